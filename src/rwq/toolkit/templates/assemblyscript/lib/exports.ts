// The exports every rwq module needs (docs/abi.md). build.sh compiles this file as an entry
// next to the plugin's, so a plugin only exports its hooks.

/** ABI v1. */
export function rwq_abi_version(): i32 {
  return 1;
}

/** An unmanaged block of `size` bytes the host writes a JSON argument or result into; the
 * SDK frees it once decoded (see takeText in rwq.ts). */
export function rwq_alloc(size: i32): usize {
  return heap.alloc(<usize>size);
}

/** Frees a block from rwq_alloc (the host never calls it). */
export function rwq_free(ptr: usize, size: i32): void {
  if (ptr) heap.free(ptr);
}
