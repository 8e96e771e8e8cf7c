/**
 * What the browser pins per server, so that it need not believe the server it checks: the
 * log's verifier key (from the settings, or trusted on first use) and the last checkpoint it
 * saw and checked. Every checkpoint the server shows later must be signed by that key and be
 * proven (RFC 9162 consistency proof) to extend the one seen before; then it becomes the one
 * seen. The first problem is kept, with its evidence (the signed notes), until the user forgets
 * the server: a server that shows a fork once and then goes back stays flagged.
 *
 * The pin lives in `localStorage` under `wasm-sandbox:trust:<server URL>`.
 */
import type { ApiClient } from './api';
import { ApiError } from './api';
import { fromHex, parseNote, verifyConsistency, verifyNoteSignature } from './verify';
import type { IParsedNote } from './verify';

export type AlarmKind =
  | 'key-changed'
  | 'bad-checkpoint'
  | 'inconsistent'
  | 'rolled-back'
  | 'unprovable';

/** A reason to trust nothing this server shows, and what proves it. */
export interface IAlarm {
  kind: AlarmKind;
  message: string;
  /** Milliseconds since the Unix epoch. */
  at: number;
  /** The signed notes (and keys) that show the problem, for the user to keep. */
  evidence: string[];
}

/** A checkpoint the browser checked. */
export interface ISeen {
  size: number;
  root: string;
  note: string;
  at: number;
}

/** What is pinned for one server. */
export interface IPin {
  key: string;
  source: 'settings' | 'tofu';
  since: number;
  seen: ISeen | null;
  alarm: IAlarm | null;
}

/** The part of `Storage` a pin needs (a seam for tests). */
export type PinStorage = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

/** The server calls a pin makes. */
export type TrustApi = Pick<ApiClient, 'publicKeys' | 'consistency' | 'serverUrl'>;

const STORAGE_PREFIX = 'wasm-sandbox:trust:';

export class Trust {
  constructor(
    private readonly api: TrustApi,
    private readonly storage: PinStorage = localStorage
  ) {}

  /** The log verifier key from the settings; empty: trust the server's on first use. */
  configuredKey = '';

  get storageKey(): string {
    return STORAGE_PREFIX + this.api.serverUrl;
  }

  /** The stored pin, or null when there is none that fits the settings. */
  current(): IPin | null {
    let pin: IPin | null = null;
    try {
      pin = JSON.parse(this.storage.getItem(this.storageKey) ?? 'null');
    } catch {
      return null;
    }
    if (!pin || typeof pin.key !== 'string' || typeof pin.since !== 'number') {
      return null;
    }
    const configured = this.configuredKey.trim();
    const fits = configured
      ? pin.source === 'settings' && pin.key === configured
      : pin.source === 'tofu';
    return fits ? pin : null;
  }

  /** Forget the pin: the next checkpoint is trusted on first use again (or by the settings). */
  forget(): void {
    this.storage.removeItem(this.storageKey);
  }

  /**
   * Check a checkpoint note the server showed and remember it when it passes. Answers the
   * pin after it (with an alarm when it failed); throws when the server could not be asked
   * (unreachable, busy): nothing is decided then.
   */
  observe(note: string): Promise<IPin> {
    const next = this._queue.then(() => this.doObserve(note));
    this._queue = next.catch(() => undefined);
    return next;
  }

  private async doObserve(note: string): Promise<IPin> {
    const serverKey = (await this.api.publicKeys()).log_verifier_key;
    const configured = this.configuredKey.trim();
    const pin = this.current() ?? {
      key: configured || serverKey,
      source: configured ? 'settings' : 'tofu',
      since: Date.now(),
      seen: null,
      alarm: null
    };
    if (!pin.alarm) {
      const outcome = await this.check(pin, note, serverKey);
      if ('kind' in outcome) {
        pin.alarm = outcome;
      } else {
        pin.seen = outcome;
      }
    }
    this.storage.setItem(this.storageKey, JSON.stringify(pin));
    return pin;
  }

  /** The checkpoint as seen, or the alarm it raises. */
  private async check(pin: IPin, note: string, serverKey: string): Promise<ISeen | IAlarm> {
    const alarm = (kind: AlarmKind, message: string, ...evidence: string[]): IAlarm => ({
      kind,
      message,
      at: Date.now(),
      evidence
    });
    if (serverKey !== pin.key) {
      const message =
        `the server now presents another log key (${serverKey}) than the one pinned ` +
        `(${pin.key}, ${pin.source === 'settings' ? 'from your settings' : 'trusted on first use'})`;
      return alarm('key-changed', message, serverKey, note);
    }
    let parsed: IParsedNote;
    try {
      parsed = parseNote(note);
    } catch (error) {
      return alarm('bad-checkpoint', `the server showed a malformed checkpoint: ${error}`, note);
    }
    const signature = await verifyNoteSignature(parsed, pin.key);
    if (signature.startsWith('failed')) {
      return alarm('bad-checkpoint', `the server showed a checkpoint ${signature}`, note);
    }
    const seen: ISeen = { size: parsed.size, root: parsed.root, note, at: Date.now() };
    const before = pin.seen;
    if (!before) {
      return seen;
    }
    const showed = `this server showed a checkpoint (tree size ${parsed.size})`;
    const earlier = `the one it showed before (tree size ${before.size})`;
    if (parsed.size < before.size) {
      return alarm('rolled-back', `${showed} smaller than ${earlier}`, before.note, note);
    }
    const proven = await this.consistent(before, parsed);
    if (typeof proven === 'string') {
      return alarm('unprovable', `${showed} it cannot prove extends ${earlier}: ${proven}`,
        before.note, note);
    }
    if (!proven) {
      return alarm('inconsistent', `${showed} inconsistent with ${earlier}`, before.note, note);
    }
    return seen;
  }

  /** Whether `now` extends `before`; the server's refusal as a string; throws when it is
   * unreachable or busy. */
  private async consistent(before: ISeen, now: IParsedNote): Promise<boolean | string> {
    if (now.size === before.size) {
      return now.root === before.root;
    }
    let hashes: string[];
    try {
      hashes = (await this.api.consistency(before.size, now.size)).hashes;
    } catch (error) {
      if (error instanceof ApiError && (error.status === 400 || error.status === 404)) {
        return error.message;
      }
      throw error;
    }
    try {
      const proof = hashes.map(fromHex);
      return await verifyConsistency(
        before.size, now.size, fromHex(before.root), fromHex(now.root), proof);
    } catch {
      return false;
    }
  }

  private _queue: Promise<unknown> = Promise.resolve();
}
