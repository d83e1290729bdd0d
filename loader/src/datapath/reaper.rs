//! The bare clsact qdiscs DELs leave ([`tc::detach_pod_leaving_qdisc`]),
//! deleted by one thread of their own a while after their DELs, a batch at
//! a time, out of the way of the DELs themselves.
//!
//! Deleting a qdisc of an interface that is up waits for an expedited RCU
//! grace period under RTNL (IPIs to every CPU), and for a pod meshed long ago
//! walks the kernel's list of tc blocks. Done by the API worker right after
//! the DEL's answer, that work competed with meshwire-cni's own exit on a
//! 2-CPU node (the slowest DEL of a 1,000-pod run: 7 ms of it after the
//! answer). Here it waits [`DELAY`]: by then the plugin has long exited, and
//! on a real node the runtime has usually deleted the pod's network
//! namespace (right after CNI DEL), which takes the qdisc with the
//! interface, so that all there is left to do is the qdisc's markers.
//!
//! What is queued lives in this process only: the qdisc's markers stay on
//! bpffs until it is gone, so a loader killed (or stopped past
//! [`Reaper::finish`]'s bound) with qdiscs queued leaves them to the next
//! start's sweep, as it finds the filters of any pod without a record. A
//! pod meshed again in between keeps its qdisc ([`tc::remove_left_qdisc`]
//! looks before it deletes).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::pins::Pins;
use super::tc::{self, LeftQdisc};
use crate::error::{Error, OrOs};

/// How long a qdisc a DEL left waits before it is deleted: long past the
/// DEL's answer and meshwire-cni's exit (milliseconds), and past the
/// runtime's deletion of the pod's namespace on a real node (right after CNI
/// DEL); short enough that a qdisc that steers nothing and its markers do not
/// linger. Those left within [`DELAY`]`/ 2` of each other go in one batch, so
/// each goes between half of it and all of it after its DEL.
pub const DELAY: Duration = Duration::from_secs(1);

enum Job {
    Left(LeftQdisc, Instant),
    /// Everything queued, now; the answer is how many were deleted.
    Finish(Sender<usize>),
}

/// The thread deleting the qdiscs DELs left. It lives while its [`Reaper`]
/// does: dropped (as a killed loader), it ends and leaves what is queued.
pub struct Reaper {
    jobs: Sender<Job>,
    /// Queued, not yet deleted.
    queued: Arc<AtomicUsize>,
}

/// What [`Reaper::finish`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished {
    pub deleted: usize,
    /// Still queued at the deadline: left to the next start's sweep.
    pub left: usize,
}

impl Reaper {
    /// The thread, deleting each qdisc `delay` after it was handed over
    /// ([`DELAY`] but in tests).
    pub fn spawn(pins: Pins, delay: Duration) -> Result<Reaper, Error> {
        let (jobs, queue) = crossbeam_channel::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&queued);
        std::thread::Builder::new()
            .name("qdisc-reaper".into())
            .spawn(move || reap(&pins, delay, &queue, &count))
            .or_os(|| "starting the thread that deletes the qdiscs DELs leave")?;
        Ok(Reaper { jobs, queued })
    }

    /// Queue a qdisc a DEL left, to be deleted a [`DELAY`] from now.
    pub fn hand(&self, left: LeftQdisc) {
        self.queued.fetch_add(1, Ordering::SeqCst);
        // The thread ends only with its Reaper: it is there.
        let _ = self.jobs.send(Job::Left(left, Instant::now()));
    }

    /// Delete what is queued now, not waiting for its delay (a clean stop),
    /// waiting at most `within`: what is not done by then stays queued
    /// (its markers leave it to the next start's sweep).
    pub fn finish(&self, within: Duration) -> Finished {
        let (done, answer) = crossbeam_channel::bounded(1);
        if self.queued.load(Ordering::SeqCst) == 0 || self.jobs.send(Job::Finish(done)).is_err() {
            return Finished { deleted: 0, left: 0 };
        }
        let before = self.queued.load(Ordering::SeqCst);
        let answered = answer.recv_timeout(within).ok();
        let left = self.queued.load(Ordering::SeqCst);
        Finished { deleted: answered.unwrap_or(before.saturating_sub(left)), left }
    }
}

/// The thread's loop: wait for the oldest qdisc's time, then delete it with
/// every one due within `delay / 2` of it.
fn reap(pins: &Pins, delay: Duration, queue: &Receiver<Job>, queued: &AtomicUsize) {
    let mut waiting: VecDeque<(Instant, LeftQdisc)> = VecDeque::new();
    loop {
        let now = Instant::now();
        if waiting.front().is_some_and(|(due, _)| *due <= now) {
            let until = now + delay / 2;
            let due = waiting.iter().take_while(|(at, _)| *at <= until).count();
            delete(pins, waiting.drain(..due).map(|(_, q)| q), queued);
            continue;
        }
        let job = match waiting.front() {
            None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some((due, _)) => queue.recv_deadline(*due),
        };
        match job {
            Ok(Job::Left(left, at)) => waiting.push_back((at + delay, left)),
            Ok(Job::Finish(done)) => {
                let n = waiting.len();
                delete(pins, waiting.drain(..).map(|(_, q)| q), queued);
                let _ = done.send(n);
            }
            Err(RecvTimeoutError::Timeout) => {}
            // The Reaper went (the process is ending): what is queued stays
            // for the next start's sweep.
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One batch. Each qdisc takes the pins lock on its own, so API requests go
/// on between them.
fn delete(pins: &Pins, batch: impl Iterator<Item = LeftQdisc>, queued: &AtomicUsize) {
    let started = Instant::now();
    let mut n = 0;
    for q in batch {
        if let Err(e) = tc::remove_left_qdisc(pins, &q) {
            log::warn!("pod {}: deleting the clsact qdisc meshwire created on {} in {}: {e}", q.cookie, q.ifname, q.netns.display());
        }
        queued.fetch_sub(1, Ordering::SeqCst);
        n += 1;
    }
    if n > 0 {
        log::debug!("tc: {n} clsact qdisc(s) left by DELs deleted in {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
    }
}
