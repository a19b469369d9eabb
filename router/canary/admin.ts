/**
 * The canary's admin actions: `POST /canary/<action>` with `{"model": M}`
 * (pause, resume, promote, rollback), answering the model's progression as
 * JSON, or an error with the HTTP status that matches its cause.
 */
import { type AdminActions, type AdminReply, jsonReply, textReply } from '../../common/admin-http.js';
import { MeshError, Status } from '../../common/errors.js';
import type { CanaryModelStatus } from './controller.js';
import type { CanaryAction } from './progression.js';

/** What the actions drive. */
export interface CanaryControl {
  control(model: string, action: CanaryAction): Promise<CanaryModelStatus>;
}

/** The operator's actions. */
export const CANARY_ACTIONS: readonly CanaryAction[] = ['pause', 'resume', 'promote', 'rollback'];

const HTTP_STATUS: Partial<Record<Status, number>> = {
  [Status.NOT_FOUND]: 404,
  [Status.FAILED_PRECONDITION]: 409,
  [Status.UNAVAILABLE]: 503,
  [Status.INVALID_ARGUMENT]: 400,
};

/** The admin routes of the canary actions. */
export function canaryActions(canary: CanaryControl): AdminActions {
  const routes: AdminActions = {};
  for (const action of CANARY_ACTIONS) {
    routes[`/canary/${action}`] = async (body): Promise<AdminReply> => {
      const model = (body as { model?: unknown } | null)?.model;
      if (typeof model !== 'string' || model === '') {
        return textReply('model: required, e.g. {"model": "llama-3-8b-chat"}\n', 400);
      }
      try {
        return jsonReply(await canary.control(model, action));
      } catch (err) {
        const e = MeshError.from(err);
        return textReply(`${e.message}\n`, HTTP_STATUS[e.code] ?? 500);
      }
    };
  }
  return routes;
}
