//! Classic CSP recipe (ch. 5): Hoare's dining philosophers. Five philosophers, five forks
//! and a butler are processes; a fork is picked up and put down over channels, and the
//! butler lets at most four philosophers sit at once, so the table can never deadlock.
//! Forks and the butler choose between their clients with alternation; when a
//! philosopher has eaten enough it leaves, its channels retire, and the forks and the
//! butler notice and stop: the program ends by itself.
//!
//! Python (PyCSP) would write each fork as:
//! ```python
//! @process
//! def fork(left_up, left_down, right_up, right_down):
//!     while True:
//!         g, _ = AltSelect(InputGuard(left_up), InputGuard(right_up))
//!         (left_down if g == left_up else right_down)()
//! ```
//!
//! Run: `cargo run --example ch5_csp_dining_philosophers`

use braid::csp::{
    Alternation, Channel, Error, Parallel, Process, Reader, Scheduler, Writer, process,
};

const PHILOSOPHERS: usize = 5;
const MEALS: u32 = 20;

/// Both channels of one fork for one philosopher: pick up, put down.
struct Hand {
    up: Writer<()>,
    down: Writer<()>,
}

/// What a process reports: meals eaten (philosophers), or the most guests seated at once
/// (the butler), or uses (forks).
type Report = (&'static str, usize, u32);

fn philosopher(
    id: usize,
    sit: Writer<usize>,
    stand: Writer<usize>,
    left: Hand,
    right: Hand,
) -> Process<Report> {
    process(async move {
        for _ in 0..MEALS {
            // Think, then ask the butler for a seat.
            std::hint::black_box(id);
            sit.write(id).await?;
            left.up.write(()).await?;
            right.up.write(()).await?;
            // Eat.
            left.down.write(()).await?;
            right.down.write(()).await?;
            stand.write(id).await?;
        }
        Ok(("philosopher", id, MEALS))
    })
}

/// A fork serves whichever neighbour asks first, until both have left the table.
fn fork(
    id: usize,
    left_up: Reader<()>,
    left_down: Reader<()>,
    right_up: Reader<()>,
    right_down: Reader<()>,
) -> Process<Report> {
    process(async move {
        let mut uses = 0;
        let mut alt = Alternation::new()
            .input(&left_up, |()| 0)
            .input(&right_up, |()| 1);
        let mut open = 2;
        while open > 0 {
            match alt.fair_select().await {
                Ok(0) => left_down.read().await?,
                Ok(_) => right_down.read().await?,
                Err(Error::Retired) => {
                    // That neighbour has finished eating.
                    let gone = alt.failed_guard().expect("the guard that retired");
                    alt.set_enabled(gone, false);
                    open -= 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            uses += 1;
        }
        Ok(("fork", id, uses))
    })
}

/// Seats at most `PHILOSOPHERS - 1` at a time.
fn butler(sit: Reader<usize>, stand: Reader<usize>) -> Process<Report> {
    process(async move {
        let mut seated = 0usize;
        let mut most = 0usize;
        loop {
            let mut alt = Alternation::new()
                .input(&sit, |_| 1isize)
                .input(&stand, |_| -1isize);
            alt.set_enabled(0, seated < PHILOSOPHERS - 1);
            match alt.fair_select().await {
                Ok(change) => {
                    seated = seated
                        .checked_add_signed(change)
                        .expect("more stood than sat");
                    most = most.max(seated);
                }
                // Every philosopher has left.
                Err(Error::Retired) => return Ok(("butler", most, 0)),
                Err(e) => return Err(e),
            }
        }
    })
}

fn table(scheduler: Scheduler) -> Result<Vec<Report>, Box<dyn std::error::Error>> {
    let (sit, stand) = (Channel::new(), Channel::new());
    // Fork f lies between philosopher f (on its side 0) and philosopher f - 1 (side 1):
    // philosopher i takes fork i on the right and fork i + 1 on the left.
    let ups: Vec<[Channel<()>; 2]> = (0..PHILOSOPHERS)
        .map(|_| [Channel::new(), Channel::new()])
        .collect();
    let downs: Vec<[Channel<()>; 2]> = (0..PHILOSOPHERS)
        .map(|_| [Channel::new(), Channel::new()])
        .collect();
    let mut processes = vec![butler(sit.reader(), stand.reader())];
    for i in 0..PHILOSOPHERS {
        let right_fork = i;
        let left_fork = (i + 1) % PHILOSOPHERS;
        processes.push(philosopher(
            i,
            sit.writer(),
            stand.writer(),
            Hand {
                up: ups[left_fork][1].writer(),
                down: downs[left_fork][1].writer(),
            },
            Hand {
                up: ups[right_fork][0].writer(),
                down: downs[right_fork][0].writer(),
            },
        ));
    }
    for f in 0..PHILOSOPHERS {
        processes.push(fork(
            f,
            ups[f][0].reader(),
            downs[f][0].reader(),
            ups[f][1].reader(),
            downs[f][1].reader(),
        ));
    }
    drop((sit, stand, ups, downs));
    let results = Parallel::new(processes).scheduler(scheduler).run()?;
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| "a process stopped without reporting".into()))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    for scheduler in [
        Scheduler::Cooperative,
        Scheduler::MultiThread { workers: 2 },
    ] {
        let reports = table(scheduler)?;
        let meals: Vec<u32> = reports
            .iter()
            .filter(|r| r.0 == "philosopher")
            .map(|r| r.2)
            .collect();
        let uses: Vec<u32> = reports
            .iter()
            .filter(|r| r.0 == "fork")
            .map(|r| r.2)
            .collect();
        let most_seated = reports.iter().find(|r| r.0 == "butler").map(|r| r.1);
        println!(
            "{scheduler:?}: meals {meals:?}, fork uses {uses:?}, at most {most_seated:?} seated"
        );
        if meals != [MEALS; PHILOSOPHERS] || uses != [2 * MEALS; PHILOSOPHERS] {
            return Err("a philosopher went hungry or a fork was miscounted".into());
        }
        if most_seated.is_none_or(|most| most > PHILOSOPHERS - 1) {
            return Err("the butler seated too many".into());
        }
    }
    Ok(())
}
