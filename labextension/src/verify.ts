/**
 * Checks the browser makes itself, without trusting the server's word: RFC 6962 / RFC 9162
 * leaf hashes, inclusion and consistency proofs, checkpoints (C2SP signed notes) under a
 * verifier key, and witnesses' cosignatures (C2SP tlog-cosignature).
 *
 * Pure functions over bytes and strings: no DOM, no server. Verifiers answer false or a
 * "failed: ..." result for a wrong input of any shape; they do not throw.
 *
 * WebCrypto exists only on secure pages (https, or http on localhost); elsewhere these checks
 * are reported as skipped and only the server's checks are shown.
 */
import type { IExecutionDetail, IRecord } from './types';

/** A check's result, in the server's words: "ok", "skipped: ..." or "failed: ...". */
export type CheckResult = string;

const encoder = new TextEncoder();
const LEAF_PREFIX = Uint8Array.of(0);
const NODE_PREFIX = Uint8Array.of(1);
/** Signature type bytes of verifier keys: note signatures, timestamped cosignatures. */
export const ED25519 = 0x01;
export const COSIGNATURE = 0x04;
const COSIGNATURE_BYTES = 4 + 8 + 64; // key id, big-endian u64 timestamp, Ed25519 signature

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
  if (typeof hex !== 'string' || !/^([0-9a-f]{2})*$/i.test(hex)) {
    throw new Error('not hex');
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), c => c.charCodeAt(0));
}

function subtle(): SubtleCrypto | null {
  return globalThis.crypto?.subtle ?? null;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const data = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    data.set(part, at);
    at += part.length;
  }
  return data;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await subtle()!.digest('SHA-256', concat(parts)));
}

/** RFC 6962 leaf hash: SHA-256(0x00 || leaf bytes). */
export function hashLeaf(leaf: Uint8Array): Promise<Uint8Array> {
  return sha256(LEAF_PREFIX, leaf);
}

function hashChildren(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(NODE_PREFIX, left, right);
}

/**
 * The leaf hash of a record re-encoded as canonical JSON: what the list shows as the run
 * commitment. Checks use the logged bytes (`leaf_b64`, see `browserChecks`) instead.
 */
export async function leafHash(record: IRecord): Promise<string> {
  const { leaf_index: _listed, ...logged } = record as IRecord & { leaf_index?: number };
  return toHex(await hashLeaf(encoder.encode(canonicalJSON(logged))));
}

function isSize(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0;
}

function isHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.length === 32;
}

const half = (n: number) => Math.floor(n / 2);
const odd = (n: number) => n % 2 === 1;

/** RFC 9162 section 2.1.3.2: the root an inclusion proof leads to, or null if it cannot. */
export async function rootFromInclusionProof(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: Uint8Array[]
): Promise<Uint8Array | null> {
  if (!isSize(index) || !isSize(size) || index >= size || !isHash(leaf) || !proof.every(isHash)) {
    return null;
  }
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) {
      return null;
    }
    if (odd(fn) || fn === sn) {
      r = await hashChildren(p, r);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = await hashChildren(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : null;
}

/** Whether `proof` shows the leaf hash `leaf` at `index` in the tree of `size` with `root`. */
export async function verifyInclusion(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: Uint8Array[],
  root: Uint8Array
): Promise<boolean> {
  const computed = await rootFromInclusionProof(leaf, index, size, proof);
  return computed !== null && isHash(root) && equal(computed, root);
}

/**
 * RFC 9162 section 2.1.4.2: whether `proof` shows the tree of `size2` leaves with `root2`
 * extends the tree of `size1` leaves with `root1`. Requires 1 <= size1 <= size2; equal sizes
 * need an empty proof and equal roots.
 */
export async function verifyConsistency(
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: Uint8Array[]
): Promise<boolean> {
  if (!isSize(size1) || !isSize(size2) || size1 < 1 || size1 > size2) {
    return false;
  }
  if (!isHash(root1) || !isHash(root2) || !proof.every(isHash)) {
    return false;
  }
  if (size1 === size2) {
    return proof.length === 0 && equal(root1, root2);
  }
  if (proof.length === 0) {
    return false;
  }
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) {
      return false;
    }
    if (odd(fn) || fn === sn) {
      fr = await hashChildren(c, fr);
      sr = await hashChildren(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = await hashChildren(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equal(fr, root1) && equal(sr, root2);
}

function isPowerOfTwo(n: number): boolean {
  while (n > 1 && !odd(n)) {
    n = half(n);
  }
  return n === 1;
}

/** A checkpoint note split into its signed text, size, root and signatures. */
export interface IParsedNote {
  text: string;
  origin: string;
  size: number;
  root: string;
  signatures: { name: string; blob: Uint8Array }[];
}

/** Split a signed note; throws an Error naming what is malformed. */
export function parseNote(note: string): IParsedNote {
  const cut = note.lastIndexOf('\n\n');
  if (cut < 0) {
    throw new Error('no blank line before the signatures');
  }
  const text = note.slice(0, cut + 1);
  const [origin, size, root] = text.split('\n');
  if (!/^(0|[1-9][0-9]*)$/.test(size ?? '') || !isSize(Number(size))) {
    throw new Error('no tree size on the second line');
  }
  const rootBytes = fromBase64(root ?? '');
  if (rootBytes.length !== 32) {
    throw new Error('no 32-byte root on the third line');
  }
  const signatures = note
    .slice(cut + 2)
    .split('\n')
    .filter(line => line.startsWith('\u2014 '))
    .map(line => {
      const [name, blob] = line.slice(2).split(' ');
      return { name, blob: fromBase64(blob ?? '') };
    });
  return { text, origin, size: Number(size), root: toHex(rootBytes), signatures };
}

/** A verifier key `name+hexkeyid+base64(type || Ed25519 public key)`, parsed. */
export interface IVerifierKey {
  name: string;
  keyId: string;
  publicKey: Uint8Array;
}

/** Parse a verifier key of signature type `kind`; throws an Error naming what is wrong. */
export async function parseVerifierKey(text: string, kind = ED25519): Promise<IVerifierKey> {
  // name+hexkeyid+base64: the base64 part may itself hold '+'.
  const match = /^([^+\s]+)\+([0-9a-f]{8})\+(.+)$/.exec(text.trim());
  if (!match) {
    throw new Error('malformed verifier key (expected name+keyid+base64)');
  }
  const [, name, keyId, b64] = match;
  let raw: Uint8Array;
  try {
    raw = fromBase64(b64);
  } catch {
    throw new Error('the verifier key is not base64');
  }
  if (raw.length !== 33 || raw[0] !== kind) {
    throw new Error(`not an Ed25519 key of type 0x0${kind}`);
  }
  const id = await sha256(encoder.encode(`${name}\n`), raw);
  if (toHex(id.slice(0, 4)) !== keyId) {
    throw new Error('the key id does not match the key');
  }
  return { name, keyId, publicKey: raw.slice(1) };
}

/** WebCrypto's Ed25519 verify, or null when this browser has no Ed25519. */
async function ed25519Verify(
  publicKey: Uint8Array,
  signature: Uint8Array,
  message: Uint8Array
): Promise<boolean | null> {
  let key: CryptoKey;
  try {
    key = await subtle()!.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch {
    return null;
  }
  try {
    return await subtle()!.verify({ name: 'Ed25519' }, key, signature, message);
  } catch {
    return false;
  }
}

const NO_ED25519 = 'skipped: this browser has no Ed25519 in WebCrypto';

/** Verify the note's Ed25519 signature by the verifier key `name+hexkeyid+base64(0x01||key)`. */
export async function verifyNoteSignature(
  note: IParsedNote,
  verifierKey: string
): Promise<CheckResult> {
  let key: IVerifierKey;
  try {
    key = await parseVerifierKey(verifierKey);
  } catch (error) {
    return `failed: the log verifier key: ${(error as Error).message}`;
  }
  if (note.origin !== key.name) {
    return `failed: the checkpoint is of origin ${note.origin}, the key of ${key.name}`;
  }
  const mine = note.signatures.filter(
    s => s.name === key.name && s.blob.length === 68 && toHex(s.blob.slice(0, 4)) === key.keyId
  );
  if (mine.length === 0) {
    return `failed: no signature by ${key.name} (key ${key.keyId})`;
  }
  for (const s of mine) {
    const ok = await ed25519Verify(key.publicKey, s.blob.slice(4), encoder.encode(note.text));
    if (ok === null) {
      return NO_ED25519;
    }
    if (ok) {
      return 'ok';
    }
  }
  return `failed: the signature by ${key.name} does not verify`;
}

/** The bytes a cosignature/v1 signs: header line, time line, then the checkpoint body. */
export function cosignatureMessage(body: string, timestamp: number): Uint8Array {
  return encoder.encode(`cosignature/v1\ntime ${timestamp}\n${body}`);
}

/** What the panel shows of one witness on a checkpoint. */
export interface ICosignatureCheck {
  name: string;
  keyId: string;
  /** valid: verified under a configured witness key; unchecked: no key (or no Ed25519). */
  status: 'valid' | 'invalid' | 'unchecked' | 'missing';
  /** Seconds since the Unix epoch the witness signed at, when valid. */
  time: number | null;
  detail: string;
}

/**
 * Every cosignature on `note` (signature lines not by the log's key) and every configured
 * witness, each with what could be checked. `witnessKeys` are C2SP verifier keys of type 0x04.
 */
export async function checkCosignatures(
  note: IParsedNote,
  logKeyId: string | null,
  witnessKeys: string[]
): Promise<ICosignatureCheck[]> {
  const keys: IVerifierKey[] = [];
  const out: ICosignatureCheck[] = [];
  for (const text of witnessKeys) {
    try {
      keys.push(await parseVerifierKey(text, COSIGNATURE));
    } catch (error) {
      const detail = `the configured witness key is unusable: ${(error as Error).message}`;
      out.push({ name: text.split('+')[0], keyId: '', status: 'invalid', time: null, detail });
    }
  }
  const seen = new Set<IVerifierKey>();
  for (const sig of note.signatures) {
    const keyId = toHex(sig.blob.slice(0, 4));
    if (sig.name === note.origin && keyId === logKeyId) {
      continue; // the log's own signature
    }
    const key = keys.find(k => k.name === sig.name && k.keyId === keyId);
    if (key) {
      seen.add(key);
    }
    out.push({ name: sig.name, keyId, ...(await checkOne(note, sig.blob, key)) });
  }
  for (const key of keys.filter(k => !seen.has(k))) {
    const detail = 'no cosignature by this witness on the checkpoint';
    out.push({ name: key.name, keyId: key.keyId, status: 'missing', time: null, detail });
  }
  return out;
}

async function checkOne(
  note: IParsedNote,
  blob: Uint8Array,
  key: IVerifierKey | undefined
): Promise<Pick<ICosignatureCheck, 'status' | 'time' | 'detail'>> {
  if (blob.length !== COSIGNATURE_BYTES) {
    return { status: 'unchecked', time: null, detail: 'not a cosignature/v1 (timestamped) line' };
  }
  const stamp = new DataView(blob.buffer, blob.byteOffset + 4, 8).getBigUint64(0);
  if (!key) {
    const detail = 'not checked: no witness key for it in the settings';
    return { status: 'unchecked', time: null, detail };
  }
  if (stamp >= 2n ** 63n) {
    return { status: 'invalid', time: null, detail: 'timestamp out of range' };
  }
  const ok = await ed25519Verify(
    key.publicKey,
    blob.slice(12),
    cosignatureMessage(note.text, Number(stamp))
  );
  if (ok === null) {
    return { status: 'unchecked', time: null, detail: NO_ED25519 };
  }
  return ok
    ? { status: 'valid', time: Number(stamp), detail: 'cosignature verifies' }
    : { status: 'invalid', time: null, detail: 'the cosignature does not verify' };
}

/**
 * The browser's own checks of one record, by name: the logged leaf bytes are the record
 * shown, their leaf hash leads through the audit path to the root of the signed checkpoint,
 * and that checkpoint is signed by `verifierKey`.
 *
 * @param detail `GET executions/{id}`
 * @param verifierKey the pinned log verifier key
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
  const leaf = await checkLeaf(detail);
  checks['browser: leaf hash'] = typeof leaf === 'string' ? leaf : `ok: ${toHex(leaf)}`;
  let note: IParsedNote | null = null;
  try {
    note = parseNote(detail.checkpoint);
  } catch (error) {
    checks['browser: checkpoint'] = `failed: malformed checkpoint (${String(error)})`;
  }
  checks['browser: inclusion'] =
    typeof leaf === 'string' ? 'failed: no leaf to prove' : await checkInclusion(detail, leaf, note);
  if (note) {
    checks['browser: signature'] = await verifyNoteSignature(note, verifierKey);
  }
  return checks;
}

/** The leaf hash of the logged bytes, or why they are not the record shown. */
async function checkLeaf(detail: IExecutionDetail): Promise<Uint8Array | CheckResult> {
  let bytes: Uint8Array;
  let logged: unknown;
  try {
    bytes = fromBase64(detail.leaf_b64);
    logged = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return 'failed: the server sent no readable leaf bytes';
  }
  if ((logged as IRecord | null)?.id !== detail.id) {
    return 'failed: the logged leaf is not the record asked for';
  }
  if (canonicalJSON(logged) !== canonicalJSON(detail.record)) {
    return 'failed: the record shown is not the logged leaf';
  }
  return hashLeaf(bytes);
}

async function checkInclusion(
  detail: IExecutionDetail,
  leaf: Uint8Array,
  note: IParsedNote | null
): Promise<CheckResult> {
  const proof = detail.inclusion_proof;
  let hashes: Uint8Array[];
  try {
    hashes = proof.hashes.map(fromHex);
  } catch {
    return 'failed: the audit path is not hex';
  }
  if (proof.leaf_index !== detail.leaf_index) {
    return 'failed: the proof is for another leaf';
  }
  if (!note || note.size !== proof.tree_size) {
    return 'failed: the proof is not against the signed checkpoint';
  }
  const ok = await verifyInclusion(leaf, proof.leaf_index, note.size, hashes, fromHex(note.root));
  return ok
    ? `ok: leaf ${proof.leaf_index} of ${note.size}`
    : 'failed: the proof does not lead to the signed root';
}

/** Whether a check result counts as passed ("ok" or "ok: ..."); skipped checks do not fail. */
export function passed(result: CheckResult): boolean {
  return result === 'ok' || result.startsWith('ok:') || result.startsWith('skipped');
}
