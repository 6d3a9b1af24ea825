//! Python's memory from Redis' allocator (OverridePythonAllocators, on by default): the RAW
//! domain and pymalloc's arenas go through RedisModule_Alloc, so Redis' `used_memory` (and so
//! `maxmemory`) counts Python too, and RG.PYSTATS / INFO report what Python holds. pymalloc
//! keeps serving small objects from those arenas, so Python runs at its usual speed
//! (BUILD-NOTES-2 §5).

use std::os::raw::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::ffi;
use redis_module::raw;

static TOTAL: AtomicU64 = AtomicU64::new(0);
static CURRENT: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

/// (total ever allocated, peak of current, current) in bytes.
pub fn stats() -> (u64, u64, u64) {
    (
        TOTAL.load(Ordering::Relaxed),
        PEAK.load(Ordering::Relaxed),
        CURRENT.load(Ordering::Relaxed),
    )
}

fn usable(ptr: *mut c_void) -> u64 {
    // SAFETY: `ptr` is a live block from RedisModule_Alloc.
    unsafe { raw::RedisModule_MallocSize.unwrap()(ptr.cast()) as u64 }
}

fn count_alloc(ptr: *mut c_void) -> *mut c_void {
    if !ptr.is_null() {
        let size = usable(ptr);
        TOTAL.fetch_add(size, Ordering::Relaxed);
        let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
    ptr
}

fn count_free(ptr: *mut c_void) {
    if !ptr.is_null() {
        CURRENT.fetch_sub(usable(ptr), Ordering::Relaxed);
    }
}

// Python asks for 0 bytes and expects a valid pointer: ask Redis for 1.
extern "C" fn malloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: Redis' allocator is thread-safe and needs no lock.
    count_alloc(unsafe { raw::RedisModule_Alloc.unwrap()(size.max(1)) })
}

extern "C" fn calloc(_ctx: *mut c_void, count: usize, size: usize) -> *mut c_void {
    // SAFETY: as above.
    count_alloc(unsafe { raw::RedisModule_Calloc.unwrap()(count.max(1), size.max(1)) })
}

extern "C" fn realloc(_ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    count_free(ptr);
    // SAFETY: `ptr` is null or a block of ours.
    count_alloc(unsafe { raw::RedisModule_Realloc.unwrap()(ptr, size.max(1)) })
}

extern "C" fn free(_ctx: *mut c_void, ptr: *mut c_void) {
    count_free(ptr);
    // SAFETY: `ptr` is null or a block of ours.
    unsafe { raw::RedisModule_Free.unwrap()(ptr) }
}

extern "C" fn arena_alloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
    malloc(std::ptr::null_mut(), size)
}

extern "C" fn arena_free(_ctx: *mut c_void, ptr: *mut c_void, _size: usize) {
    free(std::ptr::null_mut(), ptr)
}

/// Routes the allocators; must run before the interpreter starts.
pub fn route_to_redis() {
    let mut raw_allocator = ffi::PyMemAllocatorEx {
        ctx: std::ptr::null_mut(),
        malloc: Some(malloc),
        calloc: Some(calloc),
        realloc: Some(realloc),
        free: Some(free),
    };
    let mut arenas = ffi::PyObjectArenaAllocator {
        ctx: std::ptr::null_mut(),
        alloc: Some(arena_alloc),
        free: Some(arena_free),
    };
    // SAFETY: called once, before Py_Initialize; Python copies both structures.
    unsafe {
        ffi::PyMem_SetAllocator(
            ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_RAW,
            &mut raw_allocator,
        );
        ffi::PyObject_SetArenaAllocator(&mut arenas);
    }
}
