//! Entry functions and [`Run`] values: work a child runs without a registered name.
//!
//! The child is the same executable, so a function sits at the same distance from any
//! other function of it in both processes, even though each process's addresses are
//! randomised. The parent sends that distance (from an anchor function of this crate);
//! the child adds it to its own anchor. Before calling anything the child checks that
//! it runs the very same file as its parent (device and inode) and that both addresses
//! fall inside that file's code.

use std::sync::OnceLock;

use braid_core::{Codec, TaskError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The work of a process defined as a type, like subclassing Python's `Process` and
/// overriding `run()`: the value is encoded in the parent, decoded in the child, and its
/// `run` is called there.
///
/// ```no_run
/// use braid_proc::{Process, Run};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Greeter {
///     greeting: String,
/// }
///
/// impl Run for Greeter {
///     fn run(self) {
///         println!("{} from {}", self.greeting, braid_proc::current_process().name);
///     }
/// }
///
/// fn main() {
///     braid_core::init();
///     let mut p = Process::from_run(Greeter { greeting: "hello".into() });
///     p.start().unwrap();
///     p.join().unwrap();
/// }
/// ```
pub trait Run: Serialize + DeserializeOwned {
    /// The process's work; a panic makes the process exit with code 1 and its message
    /// reaches the parent's `join`.
    fn run(self);
}

/// Decodes the argument and calls the function found at `function`.
type Trampoline = fn(usize, &[u8]) -> Result<(), braid_core::Error>;

/// Where to find an entry function in the child: distances from the anchor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EntryPoint {
    trampoline: i64,
    function: i64,
    /// The executable's device and inode in the parent.
    exe: (u64, u64),
    /// The function's type, for error messages.
    what: String,
}

#[inline(never)]
fn anchor() {}

fn anchor_address() -> usize {
    anchor as fn() as usize
}

/// The executable's identity and the address ranges of its code in this process.
struct Executable {
    id: (u64, u64),
    code: Vec<(usize, usize)>,
}

fn executable() -> Result<&'static Executable, String> {
    static EXE: OnceLock<Result<Executable, String>> = OnceLock::new();
    EXE.get_or_init(|| {
        let meta =
            std::fs::metadata("/proc/self/exe").map_err(|e| format!("/proc/self/exe: {e}"))?;
        let id = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        let maps = std::fs::read_to_string("/proc/self/maps")
            .map_err(|e| format!("/proc/self/maps: {e}"))?;
        let mut code = Vec::new();
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let (Some(range), Some(perms), Some(_offset), Some(_dev), Some(inode)) = (
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
                fields.next(),
            ) else {
                continue;
            };
            if !perms.contains('x') || inode.parse::<u64>().ok() != Some(id.1) {
                continue;
            }
            if let Some((start, end)) = range.split_once('-')
                && let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                )
            {
                code.push((start, end));
            }
        }
        Ok(Executable { id, code })
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn in_code(exe: &Executable, address: usize) -> bool {
    exe.code
        .iter()
        .any(|&(start, end)| (start..end).contains(&address))
}

fn distance(address: usize) -> i64 {
    address.wrapping_sub(anchor_address()) as isize as i64
}

fn address(distance: i64) -> usize {
    anchor_address().wrapping_add(distance as isize as usize)
}

impl EntryPoint {
    fn new(trampoline: Trampoline, function: usize, what: &str) -> Result<EntryPoint, String> {
        let exe = executable()?;
        for address in [anchor_address(), trampoline as usize, function] {
            if !in_code(exe, address) {
                return Err(format!(
                    "{what} is not in the executable's own code (a function from a shared \
                     library cannot be found in the child); register it with #[braid::task]"
                ));
            }
        }
        Ok(EntryPoint {
            trampoline: distance(trampoline as usize),
            function: distance(function),
            exe: exe.id,
            what: what.to_string(),
        })
    }

    /// An entry point running `f(arg)`.
    pub(crate) fn function<A: DeserializeOwned>(f: fn(A)) -> Result<EntryPoint, String> {
        EntryPoint::new(
            call_function::<A> as Trampoline,
            f as usize,
            &format!("entry function fn({})", std::any::type_name::<A>()),
        )
    }

    /// An entry point decoding a `T` and running it.
    pub(crate) fn runnable<T: Run>() -> Result<EntryPoint, String> {
        let trampoline = call_run::<T> as Trampoline;
        EntryPoint::new(trampoline, trampoline as usize, std::any::type_name::<T>())
    }

    /// Runs the entry point with its encoded argument (in the child).
    pub(crate) fn call(&self, args: &[u8]) -> Result<(), braid_core::Error> {
        let refuse = |why: String| {
            braid_core::Error::WorkerLost(format!("cannot run {} in the child: {why}", self.what))
        };
        let exe = executable().map_err(refuse)?;
        if exe.id != self.exe {
            return Err(refuse(
                "the child runs a different executable file than its parent (was it rebuilt?)"
                    .to_string(),
            ));
        }
        let trampoline = address(self.trampoline);
        let function = address(self.function);
        if !in_code(exe, trampoline) || !in_code(exe, function) {
            return Err(refuse(
                "the function is not in this executable's code".to_string(),
            ));
        }
        // SAFETY: `trampoline` is the address the parent took of a `Trampoline` in the
        // same executable file (checked by device and inode just above), moved by the
        // same distance from `anchor` as there; code of one file keeps its layout in
        // every process that maps it, so this is that very function.
        let trampoline: Trampoline =
            unsafe { std::mem::transmute::<*const (), Trampoline>(trampoline as *const ()) };
        trampoline(function, args)
    }
}

fn catch(what: &str, body: impl FnOnce()) -> Result<(), braid_core::Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
        .map_err(|payload| TaskError::from_panic(what, &*payload).into())
}

fn call_function<A: DeserializeOwned>(
    function: usize,
    args: &[u8],
) -> Result<(), braid_core::Error> {
    let arg: A = Codec::Binary.decode(args)?;
    // SAFETY: `function` was computed by `EntryPoint::call` from the address of an
    // `fn(A)` that the parent passed to `Process::from_fn` with this very `A` (this
    // trampoline was instantiated for it), in the same executable file.
    let f: fn(A) = unsafe { std::mem::transmute::<*const (), fn(A)>(function as *const ()) };
    catch("entry function", move || f(arg))
}

fn call_run<T: Run>(_function: usize, args: &[u8]) -> Result<(), braid_core::Error> {
    let target: T = Codec::Binary.decode(args)?;
    catch(std::any::type_name::<T>(), move || target.run())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u64) {
        assert_eq!(x * 2, 84);
    }

    #[test]
    fn an_entry_point_finds_its_function_again() {
        let entry = EntryPoint::function(double as fn(u64)).unwrap();
        let args = Codec::Binary.encode(&42u64).unwrap();
        entry.call(&args).unwrap();
        let err = entry
            .call(&Codec::Binary.encode(&1u64).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
    }

    #[test]
    fn another_executable_is_refused() {
        let mut entry = EntryPoint::function(double as fn(u64)).unwrap();
        entry.exe.1 ^= 1;
        let err = entry
            .call(&Codec::Binary.encode(&42u64).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("different executable"), "{err}");
    }
}
