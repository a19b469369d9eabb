// Original file: proto/llmmesh/v1/engine.proto


/**
 * Capacity is what the engine can hold.
 */
export interface Capacity {
  'maxNumSeqs'?: (number);
  'numGpuBlocks'?: (number);
  'blockSize'?: (number);
  'maxModelLen'?: (number);
}

/**
 * Capacity is what the engine can hold.
 */
export interface Capacity__Output {
  'maxNumSeqs': (number);
  'numGpuBlocks': (number);
  'blockSize': (number);
  'maxModelLen': (number);
}
