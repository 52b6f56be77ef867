//! No leaks: 100 000 connect / message / close cycles leave live tasks,
//! connections, open file descriptors, live heap bytes and RSS back at their
//! baseline.
//!
//! RSS alone is a noisy witness (the allocator keeps what it freed, and
//! three runtimes share this process), so this binary counts live heap
//! bytes exactly with a wrapping global allocator. Linux only (it reads
//! `/proc/self`).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::AtomicIsize;

/// Bytes allocated and not yet freed, by anyone in this process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every method forwards to `System` with the caller's own pointer
// and layout, unchanged, so `System`'s guarantees carry over as they are;
// the only addition is a relaxed atomic counter, which allocates nothing
// and cannot unwind.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as received; see the impl's comment.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as received; see the impl's comment.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as received; see the impl's comment.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded as received; see the impl's comment.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_heap() -> isize {
    LIVE.load(Ordering::Relaxed)
}

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message as Frame;
use common::*;
use futures_util::future::join_all;

/// `WSWAY_LEAK_CYCLES` overrides it, for digging into a failure.
fn cycles_to_run() -> u32 {
    std::env::var("WSWAY_LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}
const WARM_UP: u32 = 5_000;
const CONCURRENCY: u32 = 25;

/// Open descriptors: a `/proc` that cannot be read fails the test (a
/// count of 0 before and after would pass it).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd: the leak test counts descriptors there")
        .count()
}

/// Resident memory in KiB, read from `/proc/self/status` (or the test fails).
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status: the leak test reads VmRSS there");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/self/status:\n{status}"))
}

/// `n` cycles spread over CONCURRENCY clients: connect, one message and its
/// echo, a clean close.
async fn cycles(addr: std::net::SocketAddr, n: u32) {
    let left = Arc::new(AtomicU32::new(n));
    join_all((0..CONCURRENCY).map(|_| {
        let left = left.clone();
        async move {
            while left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| l.checked_sub(1))
                .is_ok()
            {
                let mut ws = connect(addr, "/echo").await;
                send_text(&mut ws, "ping").await;
                assert_eq!(next_message(&mut ws).await, Frame::text("ping"));
                ws.close(None).await.expect("close");
                finish_close(&mut ws).await;
            }
        }
    }))
    .await;
}

runtime_tests_in_turn!(
    connect_message_close_cycles_leave_nothing_behind,
    "File descriptors and RSS are per process: the runtimes take turns, \
     each outside the others' time (the harness caps a whole test at 300 s)."
);

async fn connect_message_close_cycles_leave_nothing_behind(rt: Runtime) {
    let server = rt.start(examples::echo::app()).await;
    let addr = server.local_addr();
    let settle = || async {
        eventually("connections to end", || {
            server.tasks() == 0 && server.connections() == 0
        })
        .await;
        rt.sleep(Duration::from_millis(200)).await;
    };
    // The warm-up grows pools and caches to their working size. Both
    // limits fit in the harness's 300 s cap on a whole test, so either
    // can fire.
    within(
        Duration::from_secs(40),
        "the warm-up",
        cycles(addr, WARM_UP),
    )
    .await;
    settle().await;
    let (fds, rss, heap) = (open_fds(), rss_kib(), live_heap());

    let started = Instant::now();
    let n = cycles_to_run();
    within(Duration::from_secs(220), "the cycles", cycles(addr, n)).await;
    let took = started.elapsed();
    settle().await;
    let (fds_after, rss_after, heap_after) = (open_fds(), rss_kib(), live_heap());
    eprintln!(
        "{} {n} cycles in {took:.1?}: tasks 0, fds {fds} -> {fds_after}, \
         live heap {heap} -> {heap_after} B, RSS {rss} -> {rss_after} KiB",
        rt.name()
    );
    assert_eq!(server.tasks(), 0);
    assert_eq!(server.connections(), 0);
    assert_eq!(fds_after, fds, "file descriptors leaked");
    // Counted to the byte, judged with a margin: one byte leaked per
    // cycle would show as 100 KB, over the 64 KiB allowed for pools that
    // reach their working size late (timer wheels, slabs).
    assert!(
        heap_after - heap < 64 << 10,
        "live heap grew from {heap} to {heap_after} bytes"
    );
    // RSS keeps what the allocator freed; only gross growth counts here.
    assert!(
        rss_after < rss + (16 << 10),
        "RSS grew from {rss} to {rss_after} KiB"
    );
}
