/** Calls to the airlock, through this Jupyter server's extension (never straight to the hub). */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  errorMessage,
  FileKind,
  IOutputFile,
  IRequestDetail,
  IRequestSummary,
  VoteValue
} from './model';

export const NAMESPACE = 'lnds-spe-airlock';

/** A failed airlock call, with a message for the user and its HTTP status (0: no answer). */
export class AirlockError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

export interface IServerInfo {
  kind: 'workspace' | 'review';
  project: string;
  configured: boolean;
}

/** The airlock API as this server's extension offers it. */
export class AirlockClient {
  constructor(private settings = ServerConnection.makeSettings()) {}

  private async call(path: string, init: RequestInit = {}): Promise<Response> {
    const url = URLExt.join(this.settings.baseUrl, NAMESPACE, path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new AirlockError('this Jupyter server did not answer: reload the page', 0);
    }
    if (!response.ok) {
      throw new AirlockError(errorMessage(response.status, await response.text()), response.status);
    }
    return response;
  }

  private async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    return (await this.call(path, init)).json() as Promise<T>;
  }

  private send<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.json<T>(path, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' }
    });
  }

  info(): Promise<IServerInfo> {
    return this.json<IServerInfo>('config');
  }

  whoami(): Promise<{ name: string; scopes: string[] }> {
    return this.json('api/whoami');
  }

  requests(): Promise<IRequestSummary[]> {
    return this.json('api/requests');
  }

  request(id: string): Promise<IRequestDetail> {
    return this.json(`api/requests/${encodeURIComponent(id)}`);
  }

  outputs(project: string): Promise<IOutputFile[]> {
    return this.json(`api/projects/${encodeURIComponent(project)}/outputs`);
  }

  create(title: string, purpose: string, controls: string): Promise<IRequestDetail> {
    return this.send('POST', 'api/requests', {
      project: '',
      title,
      purpose,
      disclosure_controls: controls
    });
  }

  edit(id: string, title: string, purpose: string, controls: string): Promise<IRequestDetail> {
    return this.send('PATCH', `api/requests/${encodeURIComponent(id)}`, {
      title,
      purpose,
      disclosure_controls: controls
    });
  }

  addFile(id: string, name: string, kind: FileKind): Promise<IRequestDetail> {
    return this.send('POST', `api/requests/${encodeURIComponent(id)}/files`, { name, kind });
  }

  removeFile(id: string, name: string): Promise<IRequestDetail> {
    return this.send('DELETE', `api/requests/${encodeURIComponent(id)}/files/${filePath(name)}`);
  }

  vote(id: string, name: string, vote: VoteValue): Promise<IRequestDetail> {
    return this.send('PUT', `api/requests/${encodeURIComponent(id)}/files/${filePath(name)}/vote`, {
      vote
    });
  }

  comment(id: string, text: string, file: string | null): Promise<IRequestDetail> {
    return this.send('POST', `api/requests/${encodeURIComponent(id)}/comments`, { text, file });
  }

  act(id: string, action: string): Promise<IRequestDetail> {
    return this.send('POST', `api/requests/${encodeURIComponent(id)}/${action}`);
  }

  async fileContent(id: string, name: string): Promise<Blob> {
    return (await this.call(`api/requests/${encodeURIComponent(id)}/files/${filePath(name)}`)).blob();
  }
}

/** A file name as URL path segments (its folders kept). */
function filePath(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}
