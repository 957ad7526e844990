//! The `.wasm`'s allocator: blocks of up to 1 KiB come from free lists,
//! one per 16-byte size class, carved from 4 KiB slabs of the system
//! allocator (wasi-libc's dlmalloc), which keeps everything larger.
//!
//! A request allocates and frees hundreds of small strings and vectors
//! (header pairs, JSON keys, record fields); in the VM, dlmalloc's
//! `malloc` and `free` were a third of the filter's own time (a profile of
//! `bench/inwasm` in V8). Here a small allocation or free is a list pop or
//! push. Freed blocks stay in their class for the next request, so memory
//! is bounded by the peak of live blocks per class plus one slab each.
//! Single-threaded, like a wasm VM: [`Global`] is `Sync` only because
//! proxy-wasm runs one thread per VM.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// Size classes are multiples of this (and blocks are aligned to it).
const GRAIN: usize = 16;
/// Number of size classes: blocks of 16, 32, … 1024 bytes.
const CLASSES: usize = 64;
/// The largest block served from a class.
pub const MAX_SMALL: usize = GRAIN * CLASSES;
/// Bytes taken from the system allocator at a time for one class.
const SLAB: usize = 4096;

/// Free lists over a backing allocator. A free block holds the address of
/// the next free block of its class in its first word.
pub struct Pools<A> {
    backing: A,
    free: [*mut u8; CLASSES],
}

/// The class of `layout`, `None` when the backing allocator serves it.
fn class(layout: Layout) -> Option<usize> {
    (layout.align() <= GRAIN && layout.size() <= MAX_SMALL)
        .then(|| layout.size().saturating_sub(1) / GRAIN)
}

impl<A: GlobalAlloc> Pools<A> {
    /// Empty lists over `backing`.
    pub const fn new(backing: A) -> Pools<A> {
        Pools {
            backing,
            free: [ptr::null_mut(); CLASSES],
        }
    }

    /// Allocates `layout` (null when memory is exhausted).
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    pub unsafe fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            return self.backing.alloc(layout);
        };
        let head = self.free[c];
        if head.is_null() {
            return self.refill(c);
        }
        self.free[c] = head.cast::<*mut u8>().read();
        head
    }

    /// Carves a new slab for class `c`: returns its first block and lists
    /// the others.
    unsafe fn refill(&mut self, c: usize) -> *mut u8 {
        let size = (c + 1) * GRAIN;
        let count = SLAB / size;
        let Ok(layout) = Layout::from_size_align(size * count, GRAIN) else {
            return ptr::null_mut();
        };
        let slab = self.backing.alloc(layout);
        if slab.is_null() {
            return slab;
        }
        for i in (1..count).rev() {
            let block = slab.add(i * size);
            block.cast::<*mut u8>().write(self.free[c]);
            self.free[c] = block;
        }
        slab
    }

    /// Frees `p`, allocated with `layout`.
    ///
    /// # Safety
    /// As [`GlobalAlloc::dealloc`].
    pub unsafe fn dealloc(&mut self, p: *mut u8, layout: Layout) {
        match class(layout) {
            None => self.backing.dealloc(p, layout),
            Some(c) => {
                p.cast::<*mut u8>().write(self.free[c]);
                self.free[c] = p;
            }
        }
    }

    /// Resizes `p` to `new_size`; in place when the class stays the same.
    ///
    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    pub unsafe fn realloc(&mut self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class(layout), class(new)) {
            (Some(a), Some(b)) if a == b => p,
            (None, None) => self.backing.realloc(p, layout, new_size),
            _ => {
                let q = self.alloc(new);
                if !q.is_null() {
                    ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                    self.dealloc(p, layout);
                }
                q
            }
        }
    }
}

/// [`Pools`] over the system allocator, as the global allocator of a
/// single-threaded wasm VM.
pub struct Global(UnsafeCell<Pools<std::alloc::System>>);

// SAFETY: a proxy-wasm VM runs on one thread; `Global` is installed as the
// global allocator on wasm32 only.
unsafe impl Sync for Global {}

impl Global {
    /// The allocator, empty.
    pub const fn new() -> Global {
        Global(UnsafeCell::new(Pools::new(std::alloc::System)))
    }
}

impl Default for Global {
    fn default() -> Self {
        Global::new()
    }
}

// SAFETY: each call has the exclusive use of the pools (one thread, and
// the backing allocator never calls back).
unsafe impl GlobalAlloc for Global {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        (*self.0.get()).alloc(layout)
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        (*self.0.get()).dealloc(p, layout)
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        (*self.0.get()).realloc(p, layout, new_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::cell::Cell;

    /// A backing allocator that counts what it hands out.
    struct Counting<'a> {
        live: &'a Cell<usize>,
        calls: &'a Cell<usize>,
    }

    unsafe impl GlobalAlloc for Counting<'_> {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.calls.set(self.calls.get() + 1);
            self.live.set(self.live.get() + layout.size());
            System.alloc(layout)
        }
        unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
            self.live.set(self.live.get() - layout.size());
            System.dealloc(p, layout)
        }
    }

    #[test]
    fn blocks_never_overlap_and_keep_their_bytes_through_alloc_free_and_realloc() {
        let live = Cell::new(0);
        let calls = Cell::new(0);
        let mut pools = Pools::new(Counting {
            live: &live,
            calls: &calls,
        });
        // (pointer, layout, fill byte)
        let mut blocks: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for step in 0..200_000u32 {
            let r = crate::testing::xorshift(&mut seed);
            let fill = (step % 251) as u8;
            match r % 4 {
                0 | 1 if blocks.len() < 2_000 => {
                    // Mostly small, sometimes large, with assorted alignments.
                    let size = if r % 17 == 0 {
                        (r >> 8) as usize % 5_000
                    } else {
                        (r >> 8) as usize % (MAX_SMALL + 64)
                    }
                    .max(1);
                    let align = 1 << ((r >> 40) % 6);
                    let layout = Layout::from_size_align(size, align).unwrap();
                    let p = unsafe { pools.alloc(layout) };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "aligned to {align}");
                    unsafe { ptr::write_bytes(p, fill, size) };
                    blocks.push((p, layout, fill));
                }
                2 if !blocks.is_empty() => {
                    let i = (r >> 8) as usize % blocks.len();
                    let (p, layout, fill) = blocks.swap_remove(i);
                    let bytes = unsafe { std::slice::from_raw_parts(p, layout.size()) };
                    assert!(bytes.iter().all(|b| *b == fill), "a block was overwritten");
                    unsafe { pools.dealloc(p, layout) };
                }
                _ if !blocks.is_empty() => {
                    let i = (r >> 8) as usize % blocks.len();
                    let (p, layout, fill) = blocks[i];
                    let new_size = ((r >> 20) as usize % (2 * MAX_SMALL)).max(1);
                    let q = unsafe { pools.realloc(p, layout, new_size) };
                    assert!(!q.is_null());
                    let kept = layout.size().min(new_size);
                    let bytes = unsafe { std::slice::from_raw_parts(q, kept) };
                    assert!(bytes.iter().all(|b| *b == fill), "realloc lost bytes");
                    let layout = Layout::from_size_align(new_size, layout.align()).unwrap();
                    unsafe { ptr::write_bytes(q, fill, new_size) };
                    blocks[i] = (q, layout, fill);
                }
                _ => {}
            }
        }
        // No two live blocks share a byte.
        let mut spans: Vec<(usize, usize)> = blocks
            .iter()
            .map(|(p, l, _)| (*p as usize, *p as usize + l.size()))
            .collect();
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "blocks overlap");
        for (p, layout, fill) in blocks.drain(..) {
            let bytes = unsafe { std::slice::from_raw_parts(p, layout.size()) };
            assert!(bytes.iter().all(|b| *b == fill));
            unsafe { pools.dealloc(p, layout) };
        }
        // Large blocks went back to the backing allocator; small ones stay
        // listed, at most the slabs the peak needed.
        assert!(
            live.get() <= 2_000 * MAX_SMALL + CLASSES * SLAB,
            "{}",
            live.get()
        );
    }

    #[test]
    fn a_freed_block_is_reused_by_the_next_allocation_of_its_class() {
        let live = Cell::new(0);
        let calls = Cell::new(0);
        let mut pools = Pools::new(Counting {
            live: &live,
            calls: &calls,
        });
        let layout = Layout::from_size_align(40, 8).unwrap();
        let first = unsafe { pools.alloc(layout) };
        assert_eq!(calls.get(), 1, "one slab");
        assert_eq!(live.get(), SLAB / 48 * 48);
        // A request's worth of allocations of this class, freed each time.
        for _ in 0..10_000 {
            let ps: Vec<_> = (0..50).map(|_| unsafe { pools.alloc(layout) }).collect();
            for p in ps {
                unsafe { pools.dealloc(p, layout) };
            }
        }
        assert_eq!(
            calls.get(),
            1,
            "no slab beyond the first: blocks are reused"
        );
        unsafe { pools.dealloc(first, layout) };
        let again = unsafe { pools.alloc(Layout::from_size_align(33, 1).unwrap()) };
        assert_eq!(again, first, "same class (48 bytes): the last freed block");
        // Over-aligned and large layouts go to the backing allocator.
        let big = Layout::from_size_align(MAX_SMALL + 1, 8).unwrap();
        let p = unsafe { pools.alloc(big) };
        assert_eq!(calls.get(), 2);
        unsafe { pools.dealloc(p, big) };
        let aligned = Layout::from_size_align(64, 64).unwrap();
        let p = unsafe { pools.alloc(aligned) };
        assert_eq!(calls.get(), 3);
        assert_eq!(p as usize % 64, 0);
        unsafe { pools.dealloc(p, aligned) };
    }
}
