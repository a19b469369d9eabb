// Original file: proto/llmmesh/v1/inference.proto


/**
 * ListModelsRequest has no fields yet.
 */
export interface ListModelsRequest {
}

/**
 * ListModelsRequest has no fields yet.
 */
export interface ListModelsRequest__Output {
}
