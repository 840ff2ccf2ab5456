//! The C API (`include/harness.h`): a `ClusterClient` behind an opaque pointer.
//!
//! Every entry point runs its body inside `catch_unwind`, so a panic never unwinds into C; it is
//! reported as `HARNESS_PANIC`. Null or invalid pointers and non-UTF-8 text are refused with
//! `HARNESS_BAD_ARGUMENT`, never dereferenced. The detail of the last failure on a thread is kept
//! for `harness_last_error`. Bytes handed to C (`harness_get`'s value) are freed with
//! `harness_free`.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use super::address::{parse_cluster, DEFAULT_CLUSTER};
use super::cluster::{ClusterClient, ClusterError, ClusterOptions};
use super::txn_text::TxnText;
use crate::auth::{Auth, ClusterKey};
use crate::replication::Outcome;
use crate::wire::{Consistency, WatchKind};

/// Success.
pub const HARNESS_OK: c_int = 0;
/// The key does not exist.
pub const HARNESS_NOT_FOUND: c_int = 1;
/// A transaction guard failed (its `else` branch ran).
pub const HARNESS_GUARD_FAILED: c_int = 2;
/// No member is in a primary view.
pub const HARNESS_NO_QUORUM: c_int = 3;
/// No member answered in time.
pub const HARNESS_UNREACHABLE: c_int = 4;
/// An argument is null, not UTF-8 or malformed.
pub const HARNESS_BAD_ARGUMENT: c_int = 5;
/// A watch asked for revisions no longer held.
pub const HARNESS_COMPACTED: c_int = 6;
/// A member sent something that is not a valid answer.
pub const HARNESS_PROTOCOL: c_int = 7;
/// A watch saw no event within its timeout.
pub const HARNESS_TIMEOUT: c_int = 8;
/// The library panicked; the client should be closed.
pub const HARNESS_PANIC: c_int = 9;
/// No member is in a primary view because too few are connected for the write quorum
/// (docs/PROTOCOL.md §5.2).
pub const HARNESS_NOT_ENOUGH_REPLICAS: c_int = 10;

/// The opaque client handle of the C API.
pub struct HarnessClient {
    cluster: ClusterClient,
}

/// A watch callback: return 0 to go on, anything else to stop.
pub type HarnessWatchCallback = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        revision: u64,
        is_delete: c_int,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> c_int,
>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(text: &str) {
    // An interior NUL cannot be shown by C anyway; cut there.
    let text = text.split('\0').next().unwrap_or("");
    let text = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
}

/// Runs `body`, turning a panic into `HARNESS_PANIC` and remembering error details.
fn guarded(body: impl FnOnce() -> Result<c_int, (c_int, String)>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code)) => code,
        Ok(Err((code, detail))) => {
            set_last_error(&detail);
            code
        }
        Err(_) => {
            set_last_error("internal error (panic) in the harness library");
            HARNESS_PANIC
        }
    }
}

fn cluster_code(error: &ClusterError) -> c_int {
    match error {
        ClusterError::Unreachable { .. } => HARNESS_UNREACHABLE,
        ClusterError::NoQuorum { .. } => HARNESS_NO_QUORUM,
        ClusterError::NotEnoughReplicas { .. } => HARNESS_NOT_ENOUGH_REPLICAS,
        ClusterError::BadRequest { .. } => HARNESS_BAD_ARGUMENT,
        ClusterError::Compacted { .. } => HARNESS_COMPACTED,
        ClusterError::Protocol { .. } | ClusterError::Undecided { .. } => HARNESS_PROTOCOL,
    }
}

fn failed(error: ClusterError) -> (c_int, String) {
    (cluster_code(&error), error.to_string())
}

fn bad(detail: &str) -> (c_int, String) {
    (HARNESS_BAD_ARGUMENT, detail.to_string())
}

/// The bytes at `ptr`, or an error naming `what` if `ptr` is null while `len` is not 0.
///
/// # Safety
/// `ptr` must point to `len` readable bytes when it is not null.
unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], (c_int, String)> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(bad(&format!("{what} is null")));
    }
    // SAFETY: the caller promises `len` readable bytes at the non-null `ptr`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// # Safety
/// `ptr` must be null or a NUL-terminated string.
unsafe fn text<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, (c_int, String)> {
    if ptr.is_null() {
        return Err(bad(&format!("{what} is null")));
    }
    // SAFETY: the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| bad(&format!("{what} is not UTF-8")))
}

/// # Safety
/// `client` must be null or a pointer returned by `harness_connect` and not yet closed.
unsafe fn client<'a>(client: *mut HarnessClient) -> Result<&'a mut HarnessClient, (c_int, String)> {
    // SAFETY: the caller promises a live pointer from `harness_connect` (or null, refused).
    unsafe { client.as_mut() }.ok_or_else(|| bad("client is null"))
}

/// Writes `value` through `out` unless it is null.
///
/// # Safety
/// A non-null `out` must point to writable, aligned memory for a `T` (every out-parameter of
/// the C API, as `include/harness.h` documents).
unsafe fn store<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: the caller's promise above.
        unsafe { out.write(value) };
    }
}

/// The C result code of `outcome`, its revision written through `revision_out` (may be null).
///
/// # Safety
/// As for `store`: a non-null `revision_out` must be writable.
unsafe fn outcome_code(outcome: &Outcome, revision_out: *mut u64) -> c_int {
    match outcome {
        Outcome::Ok { revision, .. } => {
            // SAFETY: forwarded from our caller.
            unsafe { store(revision_out, *revision) };
            HARNESS_OK
        }
        Outcome::GuardFailed { revision, .. } => {
            // SAFETY: forwarded from our caller.
            unsafe { store(revision_out, *revision) };
            HARNESS_GUARD_FAILED
        }
        Outcome::NotFound { revision } => {
            // SAFETY: forwarded from our caller.
            unsafe { store(revision_out, *revision) };
            HARNESS_NOT_FOUND
        }
        Outcome::BadCommand { reason } => {
            set_last_error(reason);
            HARNESS_BAD_ARGUMENT
        }
    }
}

/// Creates a client of the members in `cluster` ("HOST:PORT,HOST:PORT,..."), each request
/// bounded by `timeout_ms` (0: 5000) per member. Returns null on a bad list
/// (`harness_last_error` says why). No connection is made until the first request.
///
/// # Safety
/// `cluster` must be null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn harness_connect(cluster: *const c_char, timeout_ms: u32) -> *mut HarnessClient {
    let mut handle = std::ptr::null_mut();
    guarded(|| {
        // SAFETY: forwarded from our caller.
        let list = unsafe { text(cluster, "cluster") }?;
        handle = new_client(list, timeout_ms, None)?;
        Ok(HARNESS_OK)
    });
    handle
}

/// As `harness_connect`, for a keyed cluster: every connection proves the key in `key_file`
/// (checked as `harness node --key-file` checks it), bound to `cluster_name` (null: "harness",
/// the members' default `--cluster-name`), with every frame encrypted when `encrypt` is not 0 (the
/// members' `--encrypt`). Returns null on a bad list or key file.
///
/// # Safety
/// `cluster` and `key_file` must be null or NUL-terminated strings; `cluster_name` too.
#[no_mangle]
pub unsafe extern "C" fn harness_connect_keyed(
    cluster: *const c_char,
    timeout_ms: u32,
    key_file: *const c_char,
    cluster_name: *const c_char,
    encrypt: c_int,
) -> *mut HarnessClient {
    let mut handle = std::ptr::null_mut();
    guarded(|| {
        // SAFETY: forwarded from our caller.
        let (list, key_file) = unsafe { (text(cluster, "cluster")?, text(key_file, "key_file")?) };
        let name = if cluster_name.is_null() {
            DEFAULT_CLUSTER
        } else {
            // SAFETY: forwarded from our caller.
            unsafe { text(cluster_name, "cluster_name") }?
        };
        if name.is_empty() {
            return Err(bad("cluster_name must not be empty"));
        }
        let key = ClusterKey::load(Path::new(key_file))
            .map_err(|problem| bad(&format!("key file {key_file} {problem}")))?;
        handle = new_client(list, timeout_ms, Some(Auth::new(&key, name, encrypt != 0)))?;
        Ok(HARNESS_OK)
    });
    handle
}

fn new_client(
    list: &str,
    timeout_ms: u32,
    auth: Option<Auth>,
) -> Result<*mut HarnessClient, (c_int, String)> {
    let addrs = parse_cluster(list).map_err(|problem| bad(&problem))?;
    let mut options = ClusterOptions { auth, ..ClusterOptions::default() };
    if timeout_ms > 0 {
        options.request_timeout = Duration::from_millis(u64::from(timeout_ms));
        options.deadline = options.request_timeout * 3;
    }
    let cluster = ClusterClient::new(&addrs, options).map_err(failed)?;
    Ok(Box::into_raw(Box::new(HarnessClient { cluster })))
}

/// Closes a client and frees it; null is ignored.
///
/// # Safety
/// `client` must be null or a pointer from `harness_connect(_keyed)`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn harness_close(client: *mut HarnessClient) {
    guarded(|| {
        if !client.is_null() {
            // SAFETY: the caller gives back ownership of a pointer from `harness_connect`.
            drop(unsafe { Box::from_raw(client) });
        }
        Ok(HARNESS_OK)
    });
}

/// Sets a key. On success stores the new revision in `*revision_out` (if not null).
///
/// # Safety
/// `client` from `harness_connect`; `key`/`value` point to their lengths in bytes.
#[no_mangle]
pub unsafe extern "C" fn harness_put(
    client: *mut HarnessClient,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    revision_out: *mut u64,
) -> c_int {
    guarded(|| {
        // SAFETY: forwarded from our caller.
        let (client, key, value) = unsafe {
            (self::client(client)?, bytes(key, key_len, "key")?, bytes(value, value_len, "value")?)
        };
        let outcome = client.cluster.put(key, value).map_err(failed)?;
        // SAFETY: `revision_out` is our caller's out-parameter.
        Ok(unsafe { outcome_code(&outcome, revision_out) })
    })
}

/// Removes a key: `HARNESS_OK`, or `HARNESS_NOT_FOUND` if it did not exist.
///
/// # Safety
/// `client` from `harness_connect`; `key` points to `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn harness_delete(
    client: *mut HarnessClient,
    key: *const u8,
    key_len: usize,
    revision_out: *mut u64,
) -> c_int {
    guarded(|| {
        // SAFETY: forwarded from our caller.
        let (client, key) = unsafe { (self::client(client)?, bytes(key, key_len, "key")?) };
        let outcome = client.cluster.delete(key).map_err(failed)?;
        // SAFETY: `revision_out` is our caller's out-parameter.
        Ok(unsafe { outcome_code(&outcome, revision_out) })
    })
}

/// Reads a key (linearizable, or from the member's local state if `stale` is not 0). On
/// `HARNESS_OK`, `*value_out` holds a copy to free with `harness_free(*value_out, *value_len_out)`
/// (null for an empty value) and `*mod_revision_out` the revision that last wrote it.
///
/// # Safety
/// `client` from `harness_connect`; `key` points to `key_len` bytes; the out-pointers are
/// writable (`value_out` and `value_len_out` must not be null).
#[no_mangle]
pub unsafe extern "C" fn harness_get(
    client: *mut HarnessClient,
    key: *const u8,
    key_len: usize,
    stale: c_int,
    value_out: *mut *mut u8,
    value_len_out: *mut usize,
    mod_revision_out: *mut u64,
) -> c_int {
    guarded(|| {
        if value_out.is_null() || value_len_out.is_null() {
            return Err(bad("value_out and value_len_out must not be null"));
        }
        // SAFETY: an out-parameter from our caller, non-null or skipped.
        unsafe { store(value_out, std::ptr::null_mut()) };
        // SAFETY: an out-parameter from our caller, non-null or skipped.
        unsafe { store(value_len_out, 0) };
        // SAFETY: forwarded from our caller.
        let (client, key) = unsafe { (self::client(client)?, bytes(key, key_len, "key")?) };
        let consistency = if stale != 0 { Consistency::Stale } else { Consistency::Linearizable };
        let (entry, _) = client.cluster.get(key, consistency).map_err(failed)?;
        let Some(entry) = entry else {
            return Ok(HARNESS_NOT_FOUND);
        };
        // SAFETY: an out-parameter from our caller, non-null or skipped.
        unsafe { store(mod_revision_out, entry.mod_revision) };
        // SAFETY: an out-parameter from our caller, non-null or skipped.
        unsafe { store(value_len_out, entry.value.len()) };
        if !entry.value.is_empty() {
            // SAFETY: an out-parameter from our caller, non-null or skipped.
            unsafe { store(value_out, Box::into_raw(entry.value.into_boxed_slice()).cast::<u8>()) };
        }
        Ok(HARNESS_OK)
    })
}

/// Frees bytes returned by `harness_get`; null is ignored.
///
/// # Safety
/// `ptr` and `len` must be exactly as `harness_get` returned them, freed once.
#[no_mangle]
pub unsafe extern "C" fn harness_free(ptr: *mut u8, len: usize) {
    guarded(|| {
        if !ptr.is_null() {
            // SAFETY: `ptr` and `len` describe a boxed slice handed out by `harness_get`.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
        }
        Ok(HARNESS_OK)
    });
}

/// Runs a transaction in the text form of `harness txn` ("if KEY = V\nthen put KEY V2\n...").
/// Returns `HARNESS_OK` if every guard held, `HARNESS_GUARD_FAILED` if the else branch ran;
/// either way `*revision_out` gets the revision after it.
///
/// # Safety
/// `client` from `harness_connect`; `text` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn harness_txn(
    client: *mut HarnessClient,
    text: *const c_char,
    revision_out: *mut u64,
) -> c_int {
    guarded(|| {
        // SAFETY: forwarded from our caller.
        let (client, text) = unsafe { (self::client(client)?, self::text(text, "text")?) };
        let txn = TxnText::parse(text).map_err(|problem| bad(&problem))?;
        let outcome = client.cluster.txn(txn.guards, txn.then, txn.otherwise).map_err(failed)?;
        // SAFETY: `revision_out` is our caller's out-parameter.
        Ok(unsafe { outcome_code(&outcome, revision_out) })
    })
}

/// Watches the keys under `prefix` from revision `from_revision` (0: from now on) and calls
/// `callback` for each committed change, until the callback returns non-zero (`HARNESS_OK`),
/// `max_events` were delivered (`HARNESS_OK`; 0 means no limit) or no change came for
/// `timeout_ms` (`HARNESS_TIMEOUT`). The key and value pointers are valid during the call only.
///
/// # Safety
/// `client` from `harness_connect`; `prefix` points to `prefix_len` bytes; `callback` is a valid
/// function (null is refused).
#[no_mangle]
pub unsafe extern "C" fn harness_watch(
    client: *mut HarnessClient,
    prefix: *const u8,
    prefix_len: usize,
    from_revision: u64,
    timeout_ms: u32,
    max_events: u32,
    callback: HarnessWatchCallback,
    ctx: *mut c_void,
) -> c_int {
    guarded(|| {
        // SAFETY: forwarded from our caller.
        let (client, prefix) = unsafe { (self::client(client)?, bytes(prefix, prefix_len, "prefix")?) };
        let callback = callback.ok_or_else(|| bad("callback is null"))?;
        let mut watcher = client.cluster.watch(prefix, from_revision).map_err(failed)?;
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        let mut delivered: u32 = 0;
        loop {
            let Some(event) = watcher.next(timeout).map_err(failed)? else {
                return Ok(HARNESS_TIMEOUT);
            };
            let is_delete = c_int::from(event.kind == WatchKind::Delete);
            // SAFETY: the caller promises a valid callback; the slices outlive the call.
            let stop = unsafe {
                callback(
                    ctx,
                    event.revision,
                    is_delete,
                    event.key.as_ptr(),
                    event.key.len(),
                    event.value.as_ptr(),
                    event.value.len(),
                )
            };
            delivered = delivered.saturating_add(1);
            if stop != 0 || (max_events > 0 && delivered >= max_events) {
                return Ok(HARNESS_OK);
            }
        }
    })
}

/// A static description of a result code.
#[no_mangle]
pub extern "C" fn harness_strerror(code: c_int) -> *const c_char {
    let text: &'static CStr = match code {
        HARNESS_OK => c"ok",
        HARNESS_NOT_FOUND => c"not found",
        HARNESS_GUARD_FAILED => c"guard failed",
        HARNESS_NO_QUORUM => c"no quorum",
        HARNESS_UNREACHABLE => c"unreachable",
        HARNESS_BAD_ARGUMENT => c"bad argument",
        HARNESS_COMPACTED => c"compacted",
        HARNESS_PROTOCOL => c"protocol error",
        HARNESS_TIMEOUT => c"timeout",
        HARNESS_PANIC => c"internal error",
        HARNESS_NOT_ENOUGH_REPLICAS => c"not enough replicas",
        _ => c"unknown result code",
    };
    text.as_ptr()
}

/// The detail of the last failure on this thread (empty if none); valid until the next call
/// into the library on this thread.
#[no_mangle]
pub extern "C" fn harness_last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_are_refused_without_dereferencing() {
        // SAFETY: every pointer is null or a valid literal; none is dereferenced on error.
        unsafe {
            assert!(harness_connect(std::ptr::null(), 0).is_null());
            assert!(harness_connect(c"not an address".as_ptr(), 0).is_null());
            let detail = CStr::from_ptr(harness_last_error()).to_str().unwrap().to_string();
            assert!(detail.contains("not an address"), "{detail}");
            assert_eq!(
                harness_put(
                    std::ptr::null_mut(),
                    std::ptr::null(),
                    0,
                    std::ptr::null(),
                    0,
                    std::ptr::null_mut()
                ),
                HARNESS_BAD_ARGUMENT
            );
            let client = harness_connect(c"127.0.0.1:1".as_ptr(), 100);
            assert!(!client.is_null());
            assert_eq!(
                harness_put(client, std::ptr::null(), 3, std::ptr::null(), 0, std::ptr::null_mut()),
                HARNESS_BAD_ARGUMENT
            );
            assert_eq!(harness_txn(client, c"when x".as_ptr(), std::ptr::null_mut()), HARNESS_BAD_ARGUMENT);
            assert_eq!(
                harness_watch(client, std::ptr::null(), 0, 0, 10, 1, None, std::ptr::null_mut()),
                HARNESS_BAD_ARGUMENT
            );
            harness_close(client);
            harness_free(std::ptr::null_mut(), 0);
            assert_eq!(CStr::from_ptr(harness_strerror(HARNESS_NO_QUORUM)).to_str(), Ok("no quorum"));
            assert_eq!(CStr::from_ptr(harness_strerror(42)).to_str(), Ok("unknown result code"));
        }
    }

    #[test]
    fn a_panic_becomes_a_result_code() {
        assert_eq!(guarded(|| panic!("boom")), HARNESS_PANIC);
    }
}
