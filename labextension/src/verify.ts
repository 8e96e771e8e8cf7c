/**
 * Checks the browser makes itself, without trusting the server's word: the record's leaf hash
 * (its commitment, RFC 8785 canonical JSON), its RFC 6962 inclusion proof against the
 * checkpoint's root, and the checkpoint's Ed25519 signature (C2SP signed note) by the log key.
 *
 * WebCrypto exists only on secure pages (https, or http on localhost); elsewhere these checks
 * are reported as skipped and only the server's checks are shown.
 */
import type { IExecutionDetail, IRecord } from './types';

/** A check's result, in the server's words: "ok", "skipped: ..." or "failed: ...". */
export type CheckResult = string;

const encoder = new TextEncoder();

/** RFC 8785 canonical JSON for records (integers, strings, booleans, null, arrays, objects). */
export function canonicalJSON(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJSON).join(',')}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map(k => `${JSON.stringify(k)}:${canonicalJSON((value as any)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
}

export function fromHex(hex: string): Uint8Array {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) {
    throw new Error('not hex');
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), c => c.charCodeAt(0));
}

function subtle(): SubtleCrypto | null {
  return globalThis.crypto?.subtle ?? null;
}

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    data.set(part, at);
    at += part.length;
  }
  return new Uint8Array(await subtle()!.digest('SHA-256', data));
}

/** The record's Merkle leaf hash, SHA-256(0x00 || canonical bytes): its commitment. */
export async function leafHash(record: IRecord): Promise<string> {
  const { leaf_index: _listed, ...logged } = record as IRecord & { leaf_index?: number };
  return toHex(await sha256(Uint8Array.of(0), encoder.encode(canonicalJSON(logged))));
}

/** RFC 9162 section 2.1.3.2: the root an inclusion proof leads to, or null if it cannot. */
export async function rootFromInclusionProof(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: Uint8Array[]
): Promise<Uint8Array | null> {
  if (!(index >= 0 && index < size)) {
    return null;
  }
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) {
      return null;
    }
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(Uint8Array.of(1), p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** A checkpoint note split into its signed text, size, root and signatures. */
export interface IParsedNote {
  text: string;
  origin: string;
  size: number;
  root: string;
  signatures: { name: string; blob: Uint8Array }[];
}

export function parseNote(note: string): IParsedNote {
  const cut = note.lastIndexOf('\n\n');
  if (cut < 0) {
    throw new Error('no blank line before the signatures');
  }
  const text = note.slice(0, cut + 1);
  const [origin, size, root] = text.split('\n');
  if (!/^(0|[1-9][0-9]*)$/.test(size ?? '')) {
    throw new Error('no tree size on the second line');
  }
  const signatures = note
    .slice(cut + 2)
    .split('\n')
    .filter(line => line.startsWith('\u2014 '))
    .map(line => {
      const [name, blob] = line.slice(2).split(' ');
      return { name, blob: fromBase64(blob) };
    });
  return { text, origin, size: Number(size), root: toHex(fromBase64(root)), signatures };
}

/** Verify the note's Ed25519 signature by the verifier key `name+hexkeyid+base64(0x01||key)`. */
export async function verifyNoteSignature(
  note: IParsedNote,
  verifierKey: string
): Promise<CheckResult> {
  // name+hexkeyid+base64: the base64 part may itself hold '+'.
  const match = /^([^+]+)\+([0-9a-f]{8})\+(.+)$/.exec(verifierKey);
  if (!match) {
    return 'failed: the log verifier key is malformed';
  }
  const [, name, keyId, key] = match;
  const raw = fromBase64(key);
  if (raw.length !== 33 || raw[0] !== 1) {
    return 'failed: the log verifier key is not an Ed25519 key';
  }
  const mine = note.signatures.filter(
    s => s.name === name && toHex(s.blob.slice(0, 4)) === keyId
  );
  if (mine.length === 0) {
    return `failed: no signature by ${name} (key ${keyId})`;
  }
  let publicKey: CryptoKey;
  try {
    publicKey = await subtle()!.importKey('raw', raw.slice(1), { name: 'Ed25519' }, false, [
      'verify'
    ]);
  } catch {
    return 'skipped: this browser has no Ed25519 in WebCrypto';
  }
  for (const s of mine) {
    const ok = await subtle()!.verify(
      { name: 'Ed25519' },
      publicKey,
      s.blob.slice(4),
      encoder.encode(note.text)
    );
    if (ok) {
      return 'ok';
    }
  }
  return `failed: the signature by ${name} does not verify`;
}

/**
 * The browser's own checks of one record, by name.
 *
 * @param detail `GET executions/{id}`
 * @param verifierKey the log's verifier key (`GET keys/public`)
 */
export async function browserChecks(
  detail: IExecutionDetail,
  verifierKey: string
): Promise<Record<string, CheckResult>> {
  const why = 'skipped: no WebCrypto on this page (it is not served over https or localhost)';
  if (!subtle()) {
    return { 'browser: leaf hash': why, 'browser: inclusion': why, 'browser: signature': why };
  }
  const checks: Record<string, CheckResult> = {};
  const leaf = await leafHash(detail.record);
  checks['browser: leaf hash'] =
    detail.record.id === detail.id ? `ok: ${leaf}` : 'failed: the record is not the one asked for';

  const proof = detail.inclusion_proof;
  let note: IParsedNote | null = null;
  try {
    note = parseNote(detail.checkpoint);
  } catch (error) {
    checks['browser: checkpoint'] = `failed: malformed checkpoint (${String(error)})`;
  }
  const root = await rootFromInclusionProof(
    fromHex(leaf),
    proof.leaf_index,
    proof.tree_size,
    proof.hashes.map(fromHex)
  );
  if (root === null) {
    checks['browser: inclusion'] = 'failed: the proof does not fit the tree size';
  } else if (toHex(root) !== proof.root) {
    checks['browser: inclusion'] = 'failed: the proof leads to another root';
  } else if (note && (note.size !== proof.tree_size || note.root !== proof.root)) {
    checks['browser: inclusion'] = 'failed: the proof is not against the signed checkpoint';
  } else {
    checks['browser: inclusion'] = `ok: leaf ${proof.leaf_index} of ${proof.tree_size}`;
  }
  if (note) {
    checks['browser: signature'] = await verifyNoteSignature(note, verifierKey);
  }
  return checks;
}

/** Whether a check result counts as passed ("ok" or "ok: ..."); skipped checks do not fail. */
export function passed(result: CheckResult): boolean {
  return result === 'ok' || result.startsWith('ok:') || result.startsWith('skipped');
}
