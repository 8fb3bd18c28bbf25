//! Last-resort protection against panics inside wit-component: the panic is
//! caught and turned into an error, and the panic hook stays silent for it
//! (so a command-line tool prints one error, not a panic report as well).

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static SILENT: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `f`; a panic becomes `Err(message)`. Panics on other threads, or
/// outside `catch`, still go to the previously installed hook.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !SILENT.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = SILENT.with(|s| s.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    SILENT.with(|s| s.set(was));
    result.map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            s.to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "(no message)".to_string()
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(super::catch(|| 1 + 1), Ok(2));
        assert_eq!(
            super::catch(|| -> u32 { panic!("boom {}", 1) }),
            Err("boom 1".to_string())
        );
        assert_eq!(
            super::catch(|| -> u32 { panic!("static") }),
            Err("static".to_string())
        );
        // Nested use keeps the hook silent until the outer call ends.
        let inner = super::catch(|| super::catch(|| -> u32 { panic!("inner") }));
        assert_eq!(inner, Ok(Err("inner".to_string())));
    }
}
