/**
 * The REST client: every request goes through `ServerConnection.makeRequest`, so it carries
 * Jupyter's own authentication (token or cookie and XSRF header).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type {
  ICheckpoint,
  IConsistencyProof,
  IExecutionDetail,
  IExecutionPage,
  IPublicKeys
} from './types';

export const API_PATH = 'wasm-sandbox/api';

/** A failed request, with the server's one-line message when it sent one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

export class ApiClient {
  constructor(
    private readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  /** Records with leaf index > `after`, oldest first, at most `limit`. */
  executions(limit: number, after: number): Promise<IExecutionPage> {
    return this.get(`executions?limit=${limit}&after=${after}`);
  }

  /** One record with its inclusion proof and the server's verification. */
  execution(id: string): Promise<IExecutionDetail> {
    return this.get(`executions/${encodeURIComponent(id)}`);
  }

  checkpoint(): Promise<ICheckpoint> {
    return this.get('checkpoint?format=json');
  }

  /** A consistency proof from the tree of `from` leaves to the tree of `to` leaves. */
  consistency(from: number, to: number): Promise<IConsistencyProof> {
    return this.get(`proof/consistency?from=${from}&to=${to}`);
  }

  /** Where this client's server is, as a full URL (the key of what the browser pins). */
  get serverUrl(): string {
    return new URL(this.settings.baseUrl, globalThis.location?.href).href;
  }

  publicKeys(): Promise<IPublicKeys> {
    return this.get('keys/public');
  }

  private async get<T>(path: string): Promise<T> {
    const url = URLExt.join(this.settings.baseUrl, API_PATH, path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, {}, this.settings);
    } catch (error) {
      throw new ApiError(`cannot reach the server: ${String(error)}`, 0);
    }
    const text = await response.text();
    let data: any = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const why =
        response.status === 404 && !data?.message
          ? 'the wasm-sandbox server extension is not enabled'
          : data?.message ?? response.statusText;
      throw new ApiError(`${response.status}: ${why}`, response.status);
    }
    if (data === null) {
      throw new ApiError(`unexpected answer from ${path}`, response.status);
    }
    return data as T;
  }
}
