//! [`Alternation`]: waiting on several channel operations at once and doing exactly one
//! (PyCSP's `Alternation`, `AltSelect`/`PriSelect`, `FairSelect`, and the guards
//! `InputGuard`, `OutputGuard`, `TimeoutGuard`, `SkipGuard`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::channel::{Link, Reader, Writer};
use crate::core::{Actor, After, Core, Op, ReadNow, WriteNow};
use crate::party::{Decision, Party};
use crate::timer::{self, TimerId};
use crate::{Error, block, coop};

/// A choice among guards: reads from some channels, writes to others, a timeout, a
/// skip. A select waits until at least one guard is ready, performs exactly one of the
/// ready ones (the read or write really happens, and no other does), runs that guard's
/// action once, and returns what the action returned.
///
/// Which guard wins when several are ready depends on the select:
/// [`pri_select`](Self::pri_select) takes the first in the order the guards were added
/// (PyCSP's `PriSelect`, also `AltSelect`), [`fair_select`](Self::fair_select) rotates
/// the priority past the last guard chosen so that no ready channel is starved (PyCSP's
/// `FairSelect`), and [`random_select`](Self::random_select) picks in a random order.
/// Timeout and skip guards come after the channel guards in fair and random selects.
///
/// An alternation is built once and selected from many times; guards can be disabled
/// and enabled between selects ([`set_enabled`](Self::set_enabled)). If a guard's
/// channel is poisoned or retired, the select fails with that error (PyCSP's
/// behaviour) and [`failed_guard`](Self::failed_guard) says which guard it was, so that
/// a server can disable it and go on.
///
/// Guards take network ends too, but a select over one fails with
/// [`Error::Unsupported`]: alternation needs both sides of a channel in one program.
///
/// ```
/// use std::time::Duration;
/// use braid_csp::{Alternation, Channel, Parallel, process};
///
/// #[derive(Debug, PartialEq)]
/// enum Event {
///     Number(u32),
///     Word(String),
///     Quiet,
/// }
///
/// let numbers = Channel::new();
/// let words = Channel::new();
/// let (n_out, w_out) = (numbers.writer(), words.writer());
/// let (n_in, w_in) = (numbers.reader(), words.reader());
/// let results = Parallel::new([
///     process(async move {
///         n_out.write(7u32).await?;
///         w_out.write("seven".to_string()).await?;
///         Ok(Vec::new())
///     }),
///     process(async move {
///         let mut alt = Alternation::new()
///             .input(&n_in, Event::Number)
///             .input(&w_in, Event::Word)
///             .timeout(Duration::from_millis(50), || Event::Quiet);
///         let mut seen = Vec::new();
///         for _ in 0..2 {
///             seen.push(alt.pri_select().await?);
///         }
///         Ok(seen)
///     }),
/// ])
/// .run()
/// .unwrap();
/// assert_eq!(results[1], Some(vec![Event::Number(7), Event::Word("seven".into())]));
/// ```
pub struct Alternation<'a, R> {
    guards: Vec<Entry<'a, R>>,
    /// Where the next fair select starts among the guards.
    fair_start: usize,
    rng: fastrand::Rng,
    failed: Option<usize>,
}

struct Entry<'a, R> {
    guard: Box<dyn Guard<R> + Send + 'a>,
    enabled: bool,
}

/// How a select orders its guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Priority,
    Fair,
    Random,
}

/// What offering a guard found.
enum Offer {
    /// Ready: the party is decided for it.
    Fired,
    /// Not ready: the party waits on it.
    Waiting,
    /// Its channel has ended.
    Failed(Error),
    /// The party was decided meanwhile, through another guard.
    Taken,
}

/// Whether a guard is a channel operation, which fair and random selects reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Channel,
    Other,
}

/// One guard of an alternation, whatever its channel's value type.
trait Guard<R> {
    fn class(&self) -> Class;
    /// Offers the guard as guard `index` of `party`: completes it if it is ready now,
    /// else leaves it waiting.
    fn offer(&mut self, party: &Arc<Party>, index: usize) -> Offer;
    /// Stops waiting (the party has been decided or abandoned).
    fn withdraw(&mut self, party: &Arc<Party>);
    /// The chosen guard: takes what it received and runs the action.
    fn fire(&mut self) -> R;
    /// The chosen guard, but the select was dropped before it fired: undoes what can be
    /// undone (a value read goes back to its channel).
    fn abandon(&mut self);
}

impl<'a, R> Alternation<'a, R> {
    /// An alternation with no guards yet.
    pub fn new() -> Self {
        Alternation {
            guards: Vec::new(),
            fair_start: 0,
            rng: fastrand::Rng::new(),
            failed: None,
        }
    }

    fn push(mut self, guard: impl Guard<R> + Send + 'a) -> Self {
        self.guards.push(Entry {
            guard: Box::new(guard),
            enabled: true,
        });
        self
    }

    /// Adds an input guard: ready when `end` can be read; `action` gets the value read
    /// (PyCSP's `InputGuard(cin, action)`).
    pub fn input<T: Send + 'static>(
        self,
        end: &'a Reader<T>,
        action: impl FnMut(T) -> R + Send + 'a,
    ) -> Self {
        self.push(InputGuard {
            end,
            action,
            value: None,
            waiting: None,
        })
    }

    /// Adds an output guard: ready when `value` can be written to `end`; `action` runs
    /// once it has been (PyCSP's `OutputGuard(cout, msg, action)`). Each select offers a
    /// clone of `value`.
    pub fn output<T: Clone + Send + 'static>(
        self,
        end: &'a Writer<T>,
        value: T,
        action: impl FnMut() -> R + Send + 'a,
    ) -> Self {
        self.output_with(end, move || value.clone(), action)
    }

    /// Adds an output guard whose value `make` produces afresh for each select; a value
    /// offered but not written (another guard won) is dropped.
    pub fn output_with<T: Send + 'static>(
        self,
        end: &'a Writer<T>,
        make: impl FnMut() -> T + Send + 'a,
        action: impl FnMut() -> R + Send + 'a,
    ) -> Self {
        self.push(OutputGuard {
            end,
            make,
            action,
            waiting: None,
        })
    }

    /// Adds a timeout guard: ready once `after` has passed since the select began, if no
    /// other guard was ready first (PyCSP's `TimeoutGuard(seconds)`).
    pub fn timeout(self, after: Duration, action: impl FnMut() -> R + Send + 'a) -> Self {
        self.push(TimeoutGuard {
            after,
            action,
            timer: None,
        })
    }

    /// Adds a skip guard: always ready, so the select never waits; with priority
    /// selection, placed last it is taken only when nothing before it is ready
    /// (PyCSP's `SkipGuard`).
    pub fn skip(self, action: impl FnMut() -> R + Send + 'a) -> Self {
        self.push(SkipGuard { action })
    }

    /// How many guards there are.
    pub fn len(&self) -> usize {
        self.guards.len()
    }

    /// True when there are no guards.
    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    /// Enables or disables guard `guard` (numbered from 0 in the order they were added)
    /// for the following selects; a disabled guard is not offered.
    ///
    /// # Panics
    /// If there is no guard `guard`.
    pub fn set_enabled(&mut self, guard: usize, enabled: bool) -> &mut Self {
        self.guards[guard].enabled = enabled;
        self
    }

    /// Whether guard `guard` is enabled.
    ///
    /// # Panics
    /// If there is no guard `guard`.
    pub fn is_enabled(&self, guard: usize) -> bool {
        self.guards[guard].enabled
    }

    /// The guard whose channel ended and made the last select fail, if it did.
    pub fn failed_guard(&self) -> Option<usize> {
        self.failed
    }

    /// Waits for a guard, taking the first ready one in the order they were added
    /// (PyCSP's `PriSelect` and `AltSelect`).
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Retired`] when a guard's channel (or end) is;
    /// [`Error::NoGuardEnabled`] when every guard is disabled; [`Error::Unsupported`] for
    /// a network end.
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped, no guard was performed, except that an
    /// output guard may already have delivered its value (its action then does not run);
    /// a value already read goes back to its channel.
    pub fn pri_select(&mut self) -> Select<'_, 'a, R> {
        self.select_with(Policy::Priority)
    }

    /// [`pri_select`](Self::pri_select), PyCSP's default choice.
    pub fn select(&mut self) -> Select<'_, 'a, R> {
        self.select_with(Policy::Priority)
    }

    /// Waits for a guard, giving priority to the guards after the one chosen last, so
    /// that over many selects every ready channel guard gets its turn (PyCSP's
    /// `FairSelect`). Errors and cancellation as for
    /// [`pri_select`](Self::pri_select).
    pub fn fair_select(&mut self) -> Select<'_, 'a, R> {
        self.select_with(Policy::Fair)
    }

    /// Waits for a guard, offering the channel guards in a random order. Errors and
    /// cancellation as for [`pri_select`](Self::pri_select).
    pub fn random_select(&mut self) -> Select<'_, 'a, R> {
        self.select_with(Policy::Random)
    }

    /// [`pri_select`](Self::pri_select), blocking the calling thread.
    ///
    /// # Errors
    /// Those of `pri_select`, and [`Error::BlockingInScheduler`] on a scheduler's thread.
    pub fn blocking_pri_select(&mut self) -> Result<R, Error> {
        block::blocking(self.pri_select())?
    }

    /// [`select`](Self::select), blocking the calling thread.
    ///
    /// # Errors
    /// As [`blocking_pri_select`](Self::blocking_pri_select).
    pub fn blocking_select(&mut self) -> Result<R, Error> {
        block::blocking(self.select())?
    }

    /// [`fair_select`](Self::fair_select), blocking the calling thread.
    ///
    /// # Errors
    /// As [`blocking_pri_select`](Self::blocking_pri_select).
    pub fn blocking_fair_select(&mut self) -> Result<R, Error> {
        block::blocking(self.fair_select())?
    }

    /// [`random_select`](Self::random_select), blocking the calling thread.
    ///
    /// # Errors
    /// As [`blocking_pri_select`](Self::blocking_pri_select).
    pub fn blocking_random_select(&mut self) -> Result<R, Error> {
        block::blocking(self.random_select())?
    }

    fn select_with(&mut self, policy: Policy) -> Select<'_, 'a, R> {
        Select {
            alt: self,
            policy,
            state: SelectState::Start,
        }
    }

    /// The enabled guards in the order a select offers them.
    fn order(&mut self, policy: Policy) -> Vec<usize> {
        let enabled = self.guards.iter().enumerate().filter(|(_, e)| e.enabled);
        if policy == Policy::Priority {
            return enabled.map(|(i, _)| i).collect();
        }
        let (mut channels, others): (Vec<usize>, Vec<usize>) = enabled
            .map(|(i, _)| i)
            .partition(|i| self.guards[*i].guard.class() == Class::Channel);
        match policy {
            Policy::Fair => {
                let first = channels
                    .iter()
                    .position(|i| *i >= self.fair_start)
                    .unwrap_or(0);
                channels.rotate_left(first);
            }
            Policy::Random => self.rng.shuffle(&mut channels),
            Policy::Priority => {}
        }
        channels.extend(others);
        channels
    }
}

impl<R> Default for Alternation<'_, R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R> fmt::Debug for Alternation<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alternation")
            .field("guards", &self.guards.len())
            .field("enabled", &self.guards.iter().filter(|e| e.enabled).count())
            .finish()
    }
}

enum SelectState {
    Start,
    Waiting {
        party: Arc<Party>,
        offered: Vec<usize>,
    },
    Done,
}

/// The future of a select of an [`Alternation`]: the action's value, once a guard has
/// been performed.
#[must_use = "futures do nothing unless polled"]
pub struct Select<'s, 'a, R> {
    alt: &'s mut Alternation<'a, R>,
    policy: Policy,
    state: SelectState,
}

impl<R> Select<'_, '_, R> {
    /// Withdraws every offered guard, then fires the chosen one.
    fn complete(
        &mut self,
        party: &Arc<Party>,
        offered: &[usize],
        decision: Decision,
    ) -> Result<R, Error> {
        for &i in offered {
            self.alt.guards[i].guard.withdraw(party);
        }
        match decision {
            Decision::Fired(i) => {
                self.alt.failed = None;
                if self.policy == Policy::Fair {
                    self.alt.fair_start = i + 1;
                }
                Ok(self.alt.guards[i].guard.fire())
            }
            Decision::Failed(i, error) => {
                self.alt.failed = Some(i);
                Err(error)
            }
        }
    }
}

impl<R> Future for Select<'_, '_, R> {
    type Output = Result<R, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (party, offered) = match std::mem::replace(&mut this.state, SelectState::Done) {
            SelectState::Start => {
                if !coop::proceed(cx) {
                    this.state = SelectState::Start;
                    return Poll::Pending;
                }
                let order = this.alt.order(this.policy);
                if order.is_empty() {
                    return Poll::Ready(Err(Error::NoGuardEnabled));
                }
                let party = Party::new(Some(cx.waker().clone()));
                let mut offered = Vec::with_capacity(order.len());
                for i in order {
                    offered.push(i);
                    match this.alt.guards[i].guard.offer(&party, i) {
                        Offer::Waiting => continue,
                        Offer::Fired | Offer::Taken => break,
                        Offer::Failed(error) => {
                            // Unless another guard won meanwhile, the select fails.
                            party.decide_self(Decision::Failed(i, error));
                            break;
                        }
                    }
                }
                (party, offered)
            }
            SelectState::Waiting { party, offered } => (party, offered),
            SelectState::Done => panic!("`Select` polled after it completed"),
        };
        match party.poll(cx.waker()) {
            Some(decision) => Poll::Ready(this.complete(&party, &offered, decision)),
            None => {
                this.state = SelectState::Waiting { party, offered };
                Poll::Pending
            }
        }
    }
}

impl<R> Drop for Select<'_, '_, R> {
    fn drop(&mut self) {
        if let SelectState::Waiting { party, offered } = &self.state {
            for &i in offered {
                self.alt.guards[i].guard.withdraw(party);
            }
            if let Some(Decision::Fired(i)) = party.close() {
                self.alt.guards[i].guard.abandon();
            }
        }
    }
}

impl<R> fmt::Debug for Select<'_, '_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("policy", &self.policy)
            .field(
                "waiting",
                &matches!(self.state, SelectState::Waiting { .. }),
            )
            .finish()
    }
}

/// The local channel behind an end, or why a guard cannot use it.
fn local<T>(link: &Link<T>, retired: bool) -> Result<&Arc<Core<T>>, Error> {
    if retired {
        return Err(Error::Retired);
    }
    match link {
        Link::Local(core) => Ok(core),
        Link::Remote(_) => Err(Error::Unsupported("alternation over a network channel end")),
    }
}

struct InputGuard<'a, T, F> {
    end: &'a Reader<T>,
    action: F,
    /// A value taken at once when offered.
    value: Option<T>,
    /// Where a value arrives while waiting.
    waiting: Option<Arc<Op<T>>>,
}

impl<T: Send + 'static, R, F: FnMut(T) -> R> Guard<R> for InputGuard<'_, T, F> {
    fn class(&self) -> Class {
        Class::Channel
    }

    fn offer(&mut self, party: &Arc<Party>, index: usize) -> Offer {
        self.waiting = None;
        let core = match local(&self.end.link, self.end.is_retired()) {
            Ok(core) => core,
            Err(error) => return Offer::Failed(error),
        };
        let mut after = After::new();
        let mut state = core.lock();
        let offer = match state.read_now(
            Actor::Alt {
                party,
                guard: index,
            },
            &mut after,
        ) {
            ReadNow::Value(value) => {
                self.value = Some(value);
                Offer::Fired
            }
            ReadNow::Wait => {
                let op = Op::guard(party, None);
                state.enqueue_read(Arc::clone(&op), index);
                self.waiting = Some(op);
                Offer::Waiting
            }
            ReadNow::Failed(error) => Offer::Failed(error),
            ReadNow::OwnTaken => Offer::Taken,
        };
        drop(state);
        after.finish();
        offer
    }

    fn withdraw(&mut self, party: &Arc<Party>) {
        if self.waiting.is_some()
            && let Link::Local(core) = &self.end.link
        {
            core.with(|state, after| state.withdraw_party(party, after));
        }
    }

    fn fire(&mut self) -> R {
        let value = self
            .value
            .take()
            .or_else(|| self.waiting.take().and_then(|op| op.take()))
            .expect("a fired input guard holds the value it read");
        self.waiting = None;
        (self.action)(value)
    }

    fn abandon(&mut self) {
        let value = self
            .value
            .take()
            .or_else(|| self.waiting.take().and_then(|op| op.take()));
        self.waiting = None;
        if let (Some(value), Link::Local(core)) = (value, &self.end.link) {
            core.with(|state, after| state.put_back(value, after));
        }
    }
}

impl<T, F> Drop for InputGuard<'_, T, F> {
    fn drop(&mut self) {
        debug_assert!(
            self.value.is_none(),
            "an input guard dropped a value it read"
        );
    }
}

struct OutputGuard<'a, T, M, F> {
    end: &'a Writer<T>,
    make: M,
    action: F,
    waiting: Option<Arc<Op<T>>>,
}

impl<T: Send + 'static, R, M: FnMut() -> T, F: FnMut() -> R> Guard<R> for OutputGuard<'_, T, M, F> {
    fn class(&self) -> Class {
        Class::Channel
    }

    fn offer(&mut self, party: &Arc<Party>, index: usize) -> Offer {
        self.waiting = None;
        let core = match local(&self.end.link, self.end.is_retired()) {
            Ok(core) => core,
            Err(error) => return Offer::Failed(error),
        };
        let value = (self.make)();
        let mut after = After::new();
        let mut state = core.lock();
        let (offer, unsent) = match state.write_now(
            Actor::Alt {
                party,
                guard: index,
            },
            value,
            &mut after,
        ) {
            WriteNow::Done => (Offer::Fired, None),
            WriteNow::Wait(value) => {
                let op = Op::guard(party, Some(value));
                state.enqueue_write(Arc::clone(&op), index);
                self.waiting = Some(op);
                (Offer::Waiting, None)
            }
            WriteNow::Failed(error, value) => (Offer::Failed(error), Some(value)),
            WriteNow::OwnTaken(value) => (Offer::Taken, Some(value)),
        };
        drop(state);
        drop(unsent);
        after.finish();
        offer
    }

    fn withdraw(&mut self, party: &Arc<Party>) {
        if self.waiting.is_some()
            && let Link::Local(core) = &self.end.link
        {
            core.with(|state, after| state.withdraw_party(party, after));
        }
        // A value not written is dropped here, outside every lock.
        self.waiting = None;
    }

    fn fire(&mut self) -> R {
        (self.action)()
    }

    fn abandon(&mut self) {}
}

struct TimeoutGuard<F> {
    after: Duration,
    action: F,
    timer: Option<TimerId>,
}

impl<R, F: FnMut() -> R> Guard<R> for TimeoutGuard<F> {
    fn class(&self) -> Class {
        Class::Other
    }

    fn offer(&mut self, party: &Arc<Party>, index: usize) -> Offer {
        let Some(at) = Instant::now().checked_add(self.after) else {
            // Too far to represent: it never expires.
            return Offer::Waiting;
        };
        if self.after.is_zero() {
            return if party.decide_self(Decision::Fired(index)) {
                Offer::Fired
            } else {
                Offer::Taken
            };
        }
        match timer::add(at, Arc::clone(party), index) {
            Ok(id) => {
                self.timer = Some(id);
                Offer::Waiting
            }
            Err(error) => Offer::Failed(error),
        }
    }

    fn withdraw(&mut self, _party: &Arc<Party>) {
        if let Some(id) = self.timer.take() {
            timer::cancel(id);
        }
    }

    fn fire(&mut self) -> R {
        (self.action)()
    }

    fn abandon(&mut self) {}
}

struct SkipGuard<F> {
    action: F,
}

impl<R, F: FnMut() -> R> Guard<R> for SkipGuard<F> {
    fn class(&self) -> Class {
        Class::Other
    }

    fn offer(&mut self, party: &Arc<Party>, index: usize) -> Offer {
        if party.decide_self(Decision::Fired(index)) {
            Offer::Fired
        } else {
            Offer::Taken
        }
    }

    fn withdraw(&mut self, _party: &Arc<Party>) {}

    fn fire(&mut self) -> R {
        (self.action)()
    }

    fn abandon(&mut self) {}
}
