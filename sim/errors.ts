/**
 * The error responses of vLLM's OpenAI-compatible server, in one place: the
 * nested `{"error": {...}}` body vLLM sends since 0.10.1 for API errors, and
 * FastAPI's `{"detail": ...}` for unknown routes and methods.
 */

/** An error that becomes an HTTP response with a JSON body. */
export class SimHttpError extends Error {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, body: unknown, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'SimHttpError';
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/** vLLM's error body: `{"error": {"message", "type", "param", "code"}}`. */
export function apiError(
  status: number,
  type: string,
  message: string,
  param: string | null = null,
): SimHttpError {
  return new SimHttpError(status, { error: { message, type, param, code: status } }, message);
}

/** HTTP 400 `BadRequestError`, vLLM's answer to invalid requests. */
export function badRequest(message: string, param: string | null = null): SimHttpError {
  return apiError(400, 'BadRequestError', message, param);
}

/** HTTP 404 for a model this server does not serve. */
export function modelNotFound(model: string): SimHttpError {
  return apiError(404, 'NotFoundError', `The model \`${model}\` does not exist.`, 'model');
}

/** HTTP 503 while the model is still loading. */
export function modelLoading(): SimHttpError {
  return apiError(503, 'ServiceUnavailableError', 'The model is still loading, try again later.');
}

/** The answer to a request picked by the injected error rate (`/sim/faults`). */
export function injectedFault(status: 429 | 500 | 503): SimHttpError {
  const type =
    status === 429 ? 'RateLimitError' : status === 503 ? 'ServiceUnavailableError' : 'InternalServerError';
  return apiError(status, type, `Simulated fault: this request was answered with HTTP ${status}.`);
}

/** FastAPI's 404 for a path no route matches. */
export function routeNotFound(): SimHttpError {
  return new SimHttpError(404, { detail: 'Not Found' }, 'Not Found');
}

/** FastAPI's 405 for a known path with another method. */
export function methodNotAllowed(allowed: readonly string[]): SimHttpError {
  return new SimHttpError(405, { detail: 'Method Not Allowed' }, 'Method Not Allowed', {
    allow: allowed.join(', '),
  });
}
