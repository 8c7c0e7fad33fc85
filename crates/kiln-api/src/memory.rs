//! How the binaries' memory allocator is set up.

/// Makes glibc's allocator keep one arena for every thread instead of up to eight per
/// core. The engine's threads (the blocking pool, hashing and compressing on every
/// core) each took an arena of their own, and each arena kept what it had freed:
/// kilnd's resident memory grew build by build to 108 MiB where one arena peaks at
/// 50 MiB, with no time lost (a cold copy-tree build with an OCI export: 14.8 s and
/// 70 MiB against 20.4 s and 92 MiB). Call it first in `main`, before any thread
/// starts. Elsewhere than glibc it does nothing.
pub fn use_one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of the allocator; called before
    // other threads exist, nothing races it.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the memory the allocator holds free back to the system (glibc's
/// `malloc_trim`). A daemon calls it when a build ends: what the build freed (a
/// context's listing, transfer buffers) otherwise stays resident until the next build
/// reuses it. Elsewhere than glibc it does nothing.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's heap to the
    // system; it takes the allocator's own locks.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
