//! Where an API request's time goes. The thread serving a request starts a
//! record ([`start`]); the steps it passes through mark the end of each phase
//! ([`mark`]: the time since the previous mark is the phase's); [`finish`]
//! sums them up for one log line (debug level), which `//tools/bench --mode
//! scale` reads. A thread that started no record (adoption, the CLI) marks
//! nothing: a mark is then a thread-local read and no more.

use std::cell::RefCell;
use std::time::{Duration, Instant};

struct Phases {
    started: Instant,
    last: Instant,
    /// In first-marked order; a phase marked twice adds up.
    spans: Vec<(&'static str, Duration)>,
}

thread_local! {
    static CURRENT: RefCell<Option<Phases>> = const { RefCell::new(None) };
}

/// Begin timing a request on this thread.
pub fn start() {
    let now = Instant::now();
    CURRENT.with(|c| *c.borrow_mut() = Some(Phases { started: now, last: now, spans: Vec::new() }));
}

/// The phase `name` ends now.
pub fn mark(name: &'static str) {
    CURRENT.with(|c| {
        if let Some(p) = c.borrow_mut().as_mut() {
            let now = Instant::now();
            let d = now - p.last;
            p.last = now;
            match p.spans.iter_mut().find(|(n, _)| *n == name) {
                Some((_, total)) => *total += d,
                None => p.spans.push((name, d)),
            }
        }
    });
}

/// End the request: "2.41 ms (netns cookie 0.31, tc attach 1.52, ..., other 0.12)",
/// in milliseconds; None when no record was started.
pub fn finish() -> Option<String> {
    let p = CURRENT.with(|c| c.borrow_mut().take())?;
    let now = Instant::now();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut parts: Vec<String> = p.spans.iter().map(|(n, d)| format!("{n} {:.3}", ms(*d))).collect();
    parts.push(format!("other {:.3}", ms(now - p.last)));
    Some(format!("{:.3} ms ({})", ms(now - p.started), parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_and_unstarted_threads_record_nothing() {
        mark("ignored");
        assert_eq!(finish(), None);
        start();
        std::thread::sleep(Duration::from_millis(2));
        mark("a");
        mark("b");
        std::thread::sleep(Duration::from_millis(2));
        mark("a");
        let line = finish().unwrap();
        let total: f64 = line.split(' ').next().unwrap().parse().unwrap();
        assert!(total >= 4.0, "{line}");
        let a: f64 = line.split("(a ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        assert!(a >= 4.0 && a <= total, "both of a's phases count: {line}");
        assert!(line.contains(", b ") && line.contains(", other "), "{line}");
        assert_eq!(finish(), None, "finish ends the record");
    }
}
