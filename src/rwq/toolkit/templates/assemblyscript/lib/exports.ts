// The exports every rwq module needs (docs/abi.md). build.sh compiles this file as an entry
// next to the plugin's, so a plugin only exports its hooks.
import { arenaAlloc, arenaFree } from "~lib/rwq";

/** ABI v1. */
export function rwq_abi_version(): i32 {
  return 1;
}

/** A block of `size` bytes the host writes a JSON argument or a host function's result into,
 * in the SDK's arena; 0 when memory cannot hold it (see arenaAlloc in rwq.ts): never a trap.
 * The SDK gives it back once it has copied the bytes. */
export function rwq_alloc(size: i32): usize {
  return size > 0 ? arenaAlloc(<usize>size) : 0;
}

/** Gives back a block from rwq_alloc (the host never calls it). */
export function rwq_free(ptr: usize, size: i32): void {
  if (size > 0) arenaFree(ptr, <usize>size);
}
