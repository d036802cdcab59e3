//! Polls a task again at once when it wakes itself while being polled,
//! instead of handing the wake-up to the scheduler.
//!
//! Why: hyper's HTTP/2 server sends a streaming response from a task of its
//! own, and that task wakes itself on every chunk it sends (it registers for
//! stream resets, then reserves send capacity, and h2 grants the capacity at
//! once through the waker just registered). tokio treats a task woken during
//! its own poll as a yield: it goes to the back of the run queue and another
//! worker thread is woken to look for work. For a terminal that is a futex
//! wake and a thread to place on every keystroke (two futex calls per echo
//! under `strace -c`, none with this wrapper). Polling again in place costs
//! one more poll of the same future, which the scheduler would have done
//! anyway, a little later and on a woken thread.
//!
//! A wake-up from anywhere else — another task, another thread, the reactor —
//! while the future is not being polled goes to the real task waker as
//! usual, and one that races with a poll is never lost: it either lands
//! during the poll (and the future is polled again) or after it (and wakes
//! the task). A future that keeps waking itself is polled at most
//! [`MAX_POLLS`] times in a row before it yields like any other task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// Polls in a row for a future that keeps waking itself, before it yields.
pub const MAX_POLLS: usize = 8;

const IDLE: u8 = 0;
const POLLING: u8 = 1;
const WOKEN: u8 = 2;

struct Shared {
    state: AtomicU8,
    task: AtomicWaker,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // During a poll, note it: the poll loop polls again. Otherwise wake the task.
        match self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(WOKEN) => {}
            Err(_) => self.task.wake(),
        }
    }
}

/// A future that answers its own wake-ups by polling again (see the module docs).
pub struct PollAgain<F> {
    inner: Pin<Box<F>>,
    shared: Arc<Shared>,
    waker: Waker,
}

impl<F: Future> PollAgain<F> {
    pub fn new(inner: F) -> Self {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        Self {
            inner: Box::pin(inner),
            waker: Waker::from(shared.clone()),
            shared,
        }
    }
}

impl<F: Future> Future for PollAgain<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // Before the poll, so a wake-up after it finds the current task.
        this.shared.task.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..MAX_POLLS {
            this.shared.state.store(POLLING, Ordering::Release);
            if let Poll::Ready(out) = this.inner.as_mut().poll(&mut inner_cx) {
                this.shared.state.store(IDLE, Ordering::Release);
                return Poll::Ready(out);
            }
            let settled = this.shared.state.compare_exchange(
                POLLING,
                IDLE,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if settled.is_ok() {
                return Poll::Pending;
            }
            // Woken during the poll: poll again.
        }
        this.shared.state.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// hyper's executor for the agent gateway: tokio's, with every task hyper
/// spawns (one per HTTP/2 stream) wrapped in [`PollAgain`].
#[derive(Clone, Copy, Debug, Default)]
pub struct InlineWakeExecutor;

impl<F> hyper::rt::Executor<F> for InlineWakeExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(PollAgain::new(fut));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A task waker that counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    /// Wakes itself on each of its first `left` polls, then completes.
    struct SelfWaking {
        left: usize,
        polls: usize,
    }

    impl Future for SelfWaking {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.left == 0 {
                return Poll::Ready(self.polls);
            }
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[test]
    fn a_self_wake_is_answered_by_polling_again_not_by_the_scheduler() {
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut f = PollAgain::new(SelfWaking { left: 3, polls: 0 });
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(4));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            0,
            "the task was never woken"
        );
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields_after_max_polls() {
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut f = PollAgain::new(SelfWaking {
            left: usize::MAX,
            polls: 0,
        });
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(f.inner.polls, MAX_POLLS);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "it yields: woken once");
    }

    /// Pending until `ready` is set; keeps the waker it was given.
    struct Parked {
        ready: Arc<std::sync::atomic::AtomicBool>,
        waker: Arc<std::sync::Mutex<Option<Waker>>>,
    }

    impl Future for Parked {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.ready.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_wake_after_the_poll_reaches_the_task() {
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let slot = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        let mut f = PollAgain::new(Parked {
            ready: ready.clone(),
            waker: slot.clone(),
        });
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        ready.store(true, Ordering::SeqCst);
        slot.lock().unwrap().take().unwrap().wake();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the wake-up was passed on"
        );
        assert_eq!(Pin::new(&mut f).poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_wake_after_the_poll_reaches_the_latest_task_waker() {
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let slot = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let (first, first_waker) = counting();
        let (second, second_waker) = counting();
        let mut f = PollAgain::new(Parked {
            ready,
            waker: slot.clone(),
        });
        assert!(
            Pin::new(&mut f)
                .poll(&mut Context::from_waker(&first_waker))
                .is_pending()
        );
        assert!(
            Pin::new(&mut f)
                .poll(&mut Context::from_waker(&second_waker))
                .is_pending()
        );
        slot.lock().unwrap().take().unwrap().wake();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    /// Wake-ups from another thread race with polls on this one; if one were
    /// lost, a message would sit in the channel and the test would time out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_from_other_threads_are_never_lost() {
        const N: usize = 200_000;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<usize>(1);
        let sender = std::thread::spawn(move || {
            for i in 0..N {
                tx.blocking_send(i).unwrap();
            }
        });
        let received = tokio::spawn(PollAgain::new(async move {
            let mut n = 0;
            while let Some(i) = rx.recv().await {
                assert_eq!(i, n);
                n += 1;
            }
            n
        }));
        let n = tokio::time::timeout(std::time::Duration::from_secs(60), received)
            .await
            .expect("a wake-up was lost: the receiver stalled")
            .unwrap();
        assert_eq!(n, N);
        sender.join().unwrap();
    }
}
