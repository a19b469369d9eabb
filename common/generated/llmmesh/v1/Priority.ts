// Original file: proto/llmmesh/v1/inference.proto

/**
 * Priority of a request under load.
 */
export const Priority = {
  PRIORITY_UNSPECIFIED: 'PRIORITY_UNSPECIFIED',
  PRIORITY_LOW: 'PRIORITY_LOW',
  PRIORITY_NORMAL: 'PRIORITY_NORMAL',
  PRIORITY_HIGH: 'PRIORITY_HIGH',
} as const;

/**
 * Priority of a request under load.
 */
export type Priority =
  | 'PRIORITY_UNSPECIFIED'
  | 0
  | 'PRIORITY_LOW'
  | 1
  | 'PRIORITY_NORMAL'
  | 2
  | 'PRIORITY_HIGH'
  | 3

/**
 * Priority of a request under load.
 */
export type Priority__Output = typeof Priority[keyof typeof Priority]
