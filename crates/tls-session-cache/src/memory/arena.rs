//! A shard's session memory: size-classed slabs of fixed-size pages.
//!
//! Every record (header, id, session bytes: see [`record`](super::record))
//! lives in a slot of a page that holds slots of one size class only, and
//! is named by a 4-byte [`Handle`] (page number and slot). There is no heap
//! allocation per entry: a put takes a free slot of its class, or the next
//! unused slot of the class's newest page, and only allocates when a class
//! needs a new page (16 KiB, or one slot when a class is larger).
//!
//! **Scrubbing**: a slot is overwritten with zeros (`zeroize`) the moment
//! it is freed, before it can be reused; a page whose last record is freed
//! is returned to the allocator, already zero; the pages left when the
//! arena is dropped are zeroized before they are freed. No session byte
//! outlives its entry in memory the store owns.

use zeroize::Zeroize;

/// A slot: page number in the high bits, slot number in the low
/// [`SLOT_BITS`].
pub type Handle = u32;

/// Slots per page are below 2^11 (the smallest class is 12 bytes).
const SLOT_BITS: u32 = 11;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
/// Most pages a shard may have (2^21 pages of 16 KiB: 32 GiB per shard).
const MAX_PAGES: usize = 1 << (32 - SLOT_BITS);
/// Bytes per page for classes that fit several slots.
pub const PAGE_BYTES: usize = 16 * 1024;

/// The size class of a record of `len` bytes: (class number, slot size).
///
/// 4-byte steps up to 256 bytes (where sessions without client
/// certificates are), then 32-byte steps to 1 KiB, 128-byte steps to 8 KiB
/// and 1 KiB steps beyond: above 32 bytes, at most 1/8 of a slot is
/// rounding.
pub fn class_of(len: usize) -> (usize, usize) {
    let len = len.max(1);
    if len <= 256 {
        let c = len.div_ceil(4);
        (c, c * 4)
    } else if len <= 1024 {
        let c = (len - 256).div_ceil(32);
        (64 + c, 256 + c * 32)
    } else if len <= 8192 {
        let c = (len - 1024).div_ceil(128);
        (88 + c, 1024 + c * 128)
    } else {
        let c = (len - 8192).div_ceil(1024);
        (144 + c, 8192 + c * 1024)
    }
}

struct Page {
    /// The slots, back to back; empty when the page was given back.
    bytes: Box<[u8]>,
    /// Slot size (the class's).
    slot: u32,
    class: u16,
    /// Records held.
    live: u16,
    /// Slots handed out at least once (the rest were never used).
    used: u16,
}

impl Page {
    fn slots(&self) -> usize {
        if self.slot == 0 {
            0
        } else {
            self.bytes.len() / self.slot as usize
        }
    }
}

#[derive(Default)]
struct Class {
    /// Freed slots of this class, reused first.
    free: Vec<Handle>,
    /// The page being filled and its next never-used slot.
    fresh: Option<(u32, u32)>,
}

/// Pages and free lists of one shard.
#[derive(Default)]
pub struct Arena {
    pages: Vec<Page>,
    /// Numbers of pages given back, reused before the page vector grows.
    spare_pages: Vec<u32>,
    classes: Vec<Class>,
    /// Bytes of pages currently allocated.
    allocated: usize,
    /// Slots ever handed out in allocated pages.
    slot_count: usize,
}

/// The arena cannot grow any further (a shard of 32 GiB).
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl Arena {
    /// A zeroed slot for a record of `len` bytes.
    pub fn alloc(&mut self, len: usize) -> Result<Handle, Full> {
        let (c, size) = class_of(len);
        if self.classes.len() <= c {
            self.classes.resize_with(c + 1, Class::default);
        }
        if let Some(h) = self.classes[c].free.pop() {
            self.pages[(h >> SLOT_BITS) as usize].live += 1;
            return Ok(h);
        }
        let (page, slot) = match self.classes[c].fresh {
            Some((p, s)) => (p, s),
            None => (self.new_page(c, size)?, 0),
        };
        let p = &mut self.pages[page as usize];
        p.live += 1;
        p.used += 1;
        self.slot_count += 1;
        let next = slot + 1;
        self.classes[c].fresh = ((next as usize) < p.slots()).then_some((page, next));
        Ok(page << SLOT_BITS | slot)
    }

    fn new_page(&mut self, class: usize, size: usize) -> Result<u32, Full> {
        let slots = (PAGE_BYTES / size).clamp(1, SLOT_MASK as usize);
        let page = Page {
            bytes: vec![0u8; slots * size].into_boxed_slice(),
            slot: size as u32,
            class: class as u16,
            live: 0,
            used: 0,
        };
        self.allocated += page.bytes.len();
        if let Some(n) = self.spare_pages.pop() {
            self.pages[n as usize] = page;
            return Ok(n);
        }
        if self.pages.len() >= MAX_PAGES {
            self.allocated -= page.bytes.len();
            return Err(Full);
        }
        self.pages.push(page);
        Ok((self.pages.len() - 1) as u32)
    }

    /// Zeroizes the slot and makes it free; a page left empty (and not
    /// being filled) is given back to the allocator.
    pub fn free(&mut self, h: Handle) {
        let (n, s) = ((h >> SLOT_BITS) as usize, (h & SLOT_MASK) as usize);
        let page = &mut self.pages[n];
        let size = page.slot as usize;
        page.bytes[s * size..(s + 1) * size].zeroize();
        page.live -= 1;
        let c = usize::from(page.class);
        let class = &mut self.classes[c];
        let filling = matches!(class.fresh, Some((p, _)) if p as usize == n);
        if page.live == 0 && !filling {
            // Every slot is zero already: give the page back.
            class.free.retain(|&f| (f >> SLOT_BITS) as usize != n);
            self.allocated -= page.bytes.len();
            self.slot_count -= usize::from(page.used);
            page.bytes = Box::new([]);
            page.slot = 0;
            page.used = 0;
            self.spare_pages.push(n as u32);
        } else {
            class.free.push(h);
        }
    }

    /// The slot's bytes (the whole slot: the record and its rounding).
    pub fn slot(&self, h: Handle) -> &[u8] {
        let page = &self.pages[(h >> SLOT_BITS) as usize];
        let size = page.slot as usize;
        let s = (h & SLOT_MASK) as usize;
        &page.bytes[s * size..(s + 1) * size]
    }

    /// The slot's bytes, writable.
    pub fn slot_mut(&mut self, h: Handle) -> &mut [u8] {
        let page = &mut self.pages[(h >> SLOT_BITS) as usize];
        let size = page.slot as usize;
        let s = (h & SLOT_MASK) as usize;
        &mut page.bytes[s * size..(s + 1) * size]
    }

    /// The handle after `h` in page order (wrapping), over the slots ever
    /// handed out; `None` when there are none.
    pub fn next(&self, h: Option<Handle>) -> Option<Handle> {
        let (mut n, mut s) = match h {
            Some(h) => ((h >> SLOT_BITS) as usize, (h & SLOT_MASK) as usize + 1),
            None => (0, 0),
        };
        for _ in 0..=self.pages.len() {
            if n >= self.pages.len() {
                n = 0;
                s = 0;
            }
            if s < usize::from(self.pages[n].used) {
                return Some((n as u32) << SLOT_BITS | s as u32);
            }
            n += 1;
            s = 0;
        }
        None
    }

    /// Slots ever handed out in allocated pages (one turn of
    /// [`next`](Self::next)).
    pub fn slots(&self) -> usize {
        self.slot_count
    }

    /// Bytes of pages currently allocated.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    /// Whether `needle` occurs anywhere in the arena's memory, live or free.
    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty()
            && self
                .pages
                .iter()
                .any(|p| p.bytes.windows(needle.len()).any(|w| w == needle))
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for page in &mut self.pages {
            page.bytes.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_by_at_most_an_eighth() {
        let mut last = 0;
        for len in 1..20_000 {
            let (c, size) = class_of(len);
            assert!(
                size >= len && size - len <= (size / 8).max(3),
                "{len} -> {size}"
            );
            assert_eq!(class_of(size), (c, size));
            assert!(c >= last);
            last = c;
        }
        assert_eq!(class_of(117), (30, 120));
        assert_eq!(class_of(120), (30, 120));
    }

    #[test]
    fn freed_slots_are_zero_and_reused_and_empty_pages_given_back() {
        let mut a = Arena::default();
        let h: Vec<Handle> = (0..200).map(|_| a.alloc(120).unwrap()).collect();
        // 136 slots of 120 bytes per 16 KiB page: two pages.
        assert_eq!(a.allocated(), 2 * 136 * 120);
        for (i, &x) in h.iter().enumerate() {
            a.slot_mut(x).fill((i as u8).wrapping_add(0x30));
        }
        a.free(h[5]);
        assert!(a.slot(h[5]).iter().all(|&b| b == 0));
        assert!(!a.contains(&[0x35; 120]));
        assert!(a.contains(&[0x36; 120]));
        assert_eq!(a.alloc(118).unwrap(), h[5]);
        // Emptying the first (full, not being filled) page gives it back.
        for &x in &h[..136] {
            a.free(x);
        }
        assert_eq!(a.allocated(), 136 * 120);
        // The given-back page is reused, not the free list's stale slots.
        let again: Vec<Handle> = (0..137).map(|_| a.alloc(120).unwrap()).collect();
        let mut uniq = again.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), again.len());
        assert!(again.iter().all(|&x| a.slot(x).iter().all(|&b| b == 0)));
    }

    #[test]
    fn large_classes_get_a_page_of_their_own() {
        let mut a = Arena::default();
        let x = a.alloc(20_000).unwrap();
        assert_eq!(a.slot(x).len(), 20_480);
        let y = a.alloc(20_000).unwrap();
        assert_ne!(x >> SLOT_BITS, y >> SLOT_BITS);
        a.free(x);
        assert_eq!(a.allocated(), 20_480);
        a.free(y);
        assert_eq!(a.allocated(), 0);
    }

    #[test]
    fn next_walks_every_slot_once_per_turn() {
        let mut a = Arena::default();
        for _ in 0..3 {
            a.alloc(8000).unwrap(); // 2 slots of 8 KiB per page
        }
        let mut seen = Vec::new();
        let mut h = None;
        for _ in 0..a.slots() {
            h = a.next(h);
            seen.push(h.unwrap());
        }
        assert_eq!(a.next(h), Some(seen[0]));
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 3, "the never-used fourth slot is not walked");
    }
}
