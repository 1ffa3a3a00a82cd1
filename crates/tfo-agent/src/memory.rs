//! Process-wide memory settings, applied first thing in `main` (before any thread exists).

/// Tunes the allocator and gives back the pages the dynamic loader read to start the
/// binary. Linux with glibc only; elsewhere nothing.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        tune_malloc();
        release_loader_pages();
    }
}

/// glibc gives each thread that allocates its own malloc arena (64 MiB reserved, pages
/// kept after free); the agent's threads mostly hand buffers to each other, so two
/// arenas keep resident memory near what is live instead of per-thread high-water marks.
///
/// A fixed mmap threshold (which also fixes the trim threshold at 128 KiB): by default
/// glibc raises the mmap threshold to the size of each large block freed, and the trim
/// threshold to twice that, so after the first gzip-compressed export (zlib-rs allocates
/// a 372 KiB deflate state per stream) such blocks are carved from the arenas and the
/// freed space stays resident. Fixed, they are mapped and unmapped with each export:
/// peak resident memory 2 MiB lower, for an mmap/munmap pair per large block.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: mallopt only changes allocator tuning; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// A dynamic section entry (`Elf64_Dyn`, or `Elf32_Dyn`: word-sized tag and value), and
/// the tags looked at.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[repr(C)]
struct Dyn {
    tag: isize,
    val: usize,
}
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const DT_NULL: isize = 0;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const DT_TEXTREL: isize = 22;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const DT_FLAGS: isize = 30;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const DF_TEXTREL: usize = 0x4;

/// Before `main`, the loader read the binary's read-only data segment through: its
/// ~600 KiB relocation table (25,000 entries applied once, with `BIND_NOW`), the dynamic
/// symbols, and, by the kernel's 64 KiB fault-around, the read-only data around them.
/// Those pages stay mapped, a twentieth of the agent's resident memory, though nothing
/// reads them again. Dropping the segment's pages from this process's page tables
/// (`MADV_DONTNEED` on a private read-only file mapping: the file is unchanged) leaves
/// only what the agent reads later, which faults back in from the page cache. The first
/// page (ELF and program headers, which `dl_iterate_phdr` and backtraces read) is kept.
///
/// (Packing the relocations, `-z pack-relative-relocs`, would shrink the table instead,
/// but needs glibc 2.36 at run time: RHEL 9 and Ubuntu 22.04 have 2.34 and 2.35.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_loader_pages() {
    unsafe extern "C" fn first_object(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: glibc passes a valid info for the duration of the call, and `data` is
        // the `Option<(usize, usize)>` handed to dl_iterate_phdr below.
        unsafe {
            let info = &*info;
            let out = &mut *(data as *mut Option<(usize, usize)>);
            if info.dlpi_phdr.is_null() {
                return 1;
            }
            let phdrs = std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum));
            // With text relocations the loader writes into read-only segments, and those
            // private copies must not be dropped: then nothing is released.
            if let Some(dynamic) = phdrs.iter().find(|p| p.p_type == libc::PT_DYNAMIC) {
                let mut d =
                    (info.dlpi_addr as usize).wrapping_add(dynamic.p_vaddr as usize) as *const Dyn;
                let end = d.wrapping_byte_add(dynamic.p_memsz as usize);
                while d < end && (*d).tag != DT_NULL {
                    let (tag, val) = ((*d).tag, (*d).val);
                    if tag == DT_TEXTREL || (tag == DT_FLAGS && val & DF_TEXTREL != 0) {
                        return 1;
                    }
                    d = d.add(1);
                }
            }
            // The first loadable segment that is only readable: headers, dynamic symbols,
            // relocations, read-only data (lld and GNU ld with -z separate-code).
            if let Some(p) = phdrs
                .iter()
                .find(|p| p.p_type == libc::PT_LOAD && p.p_flags == libc::PF_R)
            {
                let start = (info.dlpi_addr as usize).wrapping_add(p.p_vaddr as usize);
                *out = Some((start, p.p_memsz as usize));
            }
        }
        // Only the first object (the executable itself) is looked at.
        1
    }
    let mut seg: Option<(usize, usize)> = None;
    // SAFETY: the callback only reads the info glibc passes and writes `seg`, which
    // outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(first_object),
            &mut seg as *mut Option<(usize, usize)> as *mut libc::c_void,
        );
    }
    let Some((start, len)) = seg else {
        return;
    };
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    if page == 0 || start % page != 0 || len <= page {
        return;
    }
    let from = start + page;
    let to = (start + len) & !(page - 1);
    if to <= from {
        return;
    }
    // SAFETY: the range lies inside a read-only private file mapping of our own
    // executable; MADV_DONTNEED only drops page-table entries, and any later read faults
    // the same bytes back in from the file. A failure changes nothing.
    unsafe {
        libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// The segment's bytes read the same after its pages are dropped.
    #[test]
    fn read_only_data_reads_the_same_after_release() {
        static TABLE: [u64; 4096] = {
            let mut t = [0u64; 4096];
            let mut i = 0;
            while i < t.len() {
                t[i] = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                i += 1;
            }
            t
        };
        let before: u64 = TABLE.iter().fold(0, |a, &x| a ^ x);
        super::release_loader_pages();
        let after: u64 = std::hint::black_box(&TABLE).iter().fold(0, |a, &x| a ^ x);
        assert_eq!(before, after);
        assert_eq!(
            after,
            (0..4096u64).fold(0, |a, i| a ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        );
    }
}
