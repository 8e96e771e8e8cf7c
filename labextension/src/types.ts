/**
 * Wire types of the wasm-sandbox REST API (`/wasm-sandbox/api/`), mirrored from the
 * server's OpenAPI document (`wasm_sandbox/jupyter/openapi.json`). Only what this extension
 * reads is typed; the server may send more. `tests/unit/test_wire.py` checks every interface
 * (keys, optional keys, types) against its TypedDict in `wasm_sandbox/wire.py`.
 */

/** One sealed part of a record (program, input or result). */
export interface ISealedPart {
  commitment: string;
  enc?: string;
  ct_sha256: string;
  ct_len: number;
  size?: number;
}

/** What happened to a run (`wasm_sandbox.outcome.STATUSES`). */
export type RunStatus =
  | 'ok'
  | 'exit'
  | 'trap'
  | 'timeout'
  | 'out_of_fuel'
  | 'memory_limit'
  | 'quota'
  | 'interrupted'
  | 'error'
  | 'crashed'
  | 'compile_limit';

/** The outcome summary inside a record. */
export interface IOutcomeSummary {
  status: RunStatus;
  trap: string | null;
  exit_code: number | null;
  fuel_used: number;
  memory_bytes: number;
  duration_us: number;
}

/** The canonical execution record: what is committed and logged. */
export interface IRecord {
  v: number;
  id: string;
  /** Milliseconds since the Unix epoch. */
  time: number;
  recipient: string;
  suite: string;
  program: ISealedPart;
  input: ISealedPart;
  result: ISealedPart;
  limits: Record<string, number>;
  outcome: IOutcomeSummary;
  deterministic: boolean;
  /** What the guest could touch (values stay sealed); absent in older records. */
  grants?: IPublicGrants;
  /** The verifier key whose signature covers the whole program binary. */
  signer?: string;
  /** The module's trust level and the decisions on its manifest. */
  policy?: IPolicy;
  /** The face the run came through, when it records itself (the MCP server). */
  face?: IFace;
  [key: string]: unknown;
}

/** What became of one request of a module's manifest. */
export interface IPolicyDecision {
  capability: string;
  decision: string;
  reason: string;
}

/** A run's trust level (trusted, unknown, dev) and the decisions on its manifest. */
export interface IPolicy {
  level: string;
  decisions: IPolicyDecision[];
}

/** Who ran a record: the face, the client's self-declared name, whether authenticated. */
export interface IFace {
  name: string;
  authenticated: boolean;
  client?: string;
  user?: string;
}

/** A granted directory as the public record shows it: the guest path and its mode. */
export interface IDirShown {
  guest: string;
  mode: string;
}

/** A granted key-value namespace as the public record shows it. */
export interface IKvShown {
  namespace: string;
  mode: string;
}

/** The public grants of a record: guest paths, env names, argv and stdin counts, and the
 * host functions when granted. */
export interface IPublicGrants {
  dirs: IDirShown[];
  env: string[];
  argv: number;
  stdin_bytes: number;
  kv?: IKvShown;
  host_log?: boolean;
}

/** A record as listed by `GET executions`: the record plus its leaf index. */
export interface IListedRecord extends IRecord {
  leaf_index: number;
}

/** `GET executions?limit=&after=`: records with leaf index > after, oldest first. */
export interface IExecutionPage {
  items: IListedRecord[];
  tree_size: number;
  next_after: number | null;
}

/** The RFC 6962 audit path of a record's leaf. */
export interface IInclusionProof {
  leaf_index: number;
  tree_size: number;
  root: string;
  hashes: string[];
}

/** The server's verification: each check is "ok", "skipped: ..." or "failed: ...". */
export interface IVerification {
  id: string;
  verified: boolean;
  leaf_index: number;
  tree_size: number;
  root: string;
  checks: Record<string, string>;
}

/** `GET executions/{id}`. */
export interface IExecutionDetail {
  id: string;
  leaf_index: number;
  record: IRecord;
  /** base64 of the logged leaf: the record's canonical bytes, `record` decoded from them. */
  leaf_b64: string;
  ciphertexts: { program: string; input: string; result: string };
  inclusion_proof: IInclusionProof;
  checkpoint: string;
  receipt: string;
  verification: IVerification;
}

/** `GET checkpoint?format=json`; `cosignatures` are the witnesses' lines on the note. */
export interface ICheckpoint {
  checkpoint: string;
  origin: string;
  tree_size: number;
  root: string;
  cosignatures: string[];
}

/** `GET proof/consistency?from=&to=`: RFC 6962 consistency proof between two tree sizes. */
export interface IConsistencyProof {
  from: number;
  to: number;
  from_root: string;
  to_root: string;
  hashes: string[];
}

/** `POST checkpoint/cosignatures`: a witness's cosignature line on a stored checkpoint. */
export interface ICosignatureRequest {
  tree_size: number;
  cosignature: string;
  verifier_key: string;
}

/** The answer to `POST checkpoint/cosignatures`: the note with every stored cosignature. */
export interface ICosignatureAdded {
  tree_size: number;
  witness: string;
  time: number;
  checkpoint: string;
}

/** `GET keys/public`. */
export interface IPublicKeys {
  recipient_public_key_pem: string;
  recipient_key_id: string;
  log_origin: string;
  log_verifier_key: string;
}

/** An error answer: `{"message", "reason", "field"?}`. */
export interface IApiError {
  message: string;
  reason?: string | null;
  field?: string;
}
