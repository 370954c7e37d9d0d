//! Celery beat: entries fire on a test's own clock (never the wall clock), two beats on
//! one broker send each due run exactly once (also when the leader dies and the other
//! takes over), and last runs survive a restart. Memory broker; store files in a fresh
//! temporary folder.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use braid_taskq::{App, Beat, Entry, Schedule};
use serde_json::json;

fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("braid-beat-test"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 2026-01-05 00:00:00 UTC, a Monday.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_571_200)
}

fn at(seconds: u64) -> SystemTime {
    t0() + Duration::from_secs(seconds)
}

fn entries(queue: &str) -> Vec<Entry> {
    vec![
        Entry::new(
            "add-10s",
            "tasks.add",
            Schedule::every(Duration::from_secs(10)),
        )
        .args(vec![json!(1), json!(2)])
        .queue(queue),
        Entry::new(
            "five-minutes",
            "tasks.noop",
            Schedule::crontab("*/5 * * * *").unwrap(),
        )
        .queue(queue),
    ]
}

#[test]
fn entries_fire_on_a_fake_clock() {
    let url = format!("memory://{}", unique("beat"));
    let app = App::new(&url, None).unwrap();
    let queue = unique("q");
    let dir = temp_dir();
    let mut beat = Beat::new(&app, entries(&queue), dir.join("state.json")).unwrap();
    let mut sent = Vec::new();
    for s in 0..=3600 {
        let tick = beat.tick_at(at(s)).unwrap();
        assert!(tick.leader);
        sent.extend(tick.sent);
    }
    let every = sent.iter().filter(|(n, _)| n == "add-10s").count();
    let cron = sent.iter().filter(|(n, _)| n == "five-minutes").count();
    // First seen at 0: the interval fires at 10, 20, ..., 3600; the crontab at every
    // fifth minute after that: 5, 10, ..., 60.
    assert_eq!(every, 360);
    assert_eq!(cron, 12);
    assert_eq!(app.queue_len(&queue).unwrap(), 372);
    assert_eq!(beat.last_run("add-10s").unwrap().total_run_count, 360);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn two_beats_send_each_run_once_and_the_standby_takes_over() {
    let url = format!("memory://{}", unique("beat2"));
    let app = App::new(&url, None).unwrap();
    let queue = unique("q");
    let dir = temp_dir();
    // Two machines by mistake: each its own store, one broker lock.
    let mut a = Beat::new(&app, entries(&queue), dir.join("a.json"))
        .unwrap()
        .lock_ttl(Duration::from_millis(300));
    let mut b = Beat::new(&app, entries(&queue), dir.join("b.json"))
        .unwrap()
        .lock_ttl(Duration::from_millis(300));
    let mut sent = 0;
    for s in 0..=600 {
        let ta = a.tick_at(at(s)).unwrap();
        let tb = b.tick_at(at(s)).unwrap();
        assert!(ta.leader != tb.leader, "exactly one leader at {s}");
        assert!(tb.sent.is_empty());
        sent += ta.sent.len() + tb.sent.len();
    }
    assert_eq!(sent, 60 + 2);
    // The leader dies (no goodbye): the standby takes over once the lock runs out. The
    // test's clock stands still meanwhile, so no run falls due in the gap.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tick = b.tick_at(at(600)).unwrap();
        assert!(
            tick.sent.is_empty(),
            "nothing is due again at 600: {tick:?}"
        );
        if tick.leader {
            break;
        }
        assert!(Instant::now() < deadline, "the standby never took over");
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in 601..=1200 {
        sent += b.tick_at(at(s)).unwrap().sent.len();
    }
    assert_eq!(sent, 120 + 4);
    assert_eq!(app.queue_len(&queue).unwrap(), 124);
    // A beat that stops cleanly hands over at once.
    let mut c = Beat::new(&app, entries(&queue), dir.join("c.json")).unwrap();
    assert!(!c.tick_at(at(1201)).unwrap().leader);
    b.release();
    assert!(c.tick_at(at(1202)).unwrap().leader);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_restart_keeps_the_last_runs() {
    let url = format!("memory://{}", unique("beat3"));
    let app = App::new(&url, None).unwrap();
    let queue = unique("q");
    let dir = temp_dir();
    let store = dir.join("schedule.state.json");
    let mut beat = Beat::new(&app, entries(&queue), &store).unwrap();
    for s in 0..=25 {
        beat.tick_at(at(s)).unwrap();
    }
    assert_eq!(app.queue_len(&queue).unwrap(), 2); // at 10 and 20
    beat.release();
    drop(beat);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
    assert_eq!(saved["add-10s"]["total_run_count"], 2);

    // Restarted at 27: the next run is due at 30 (20 + 10), not 10 s after the restart.
    let mut again = Beat::new(&app, entries(&queue), &store).unwrap();
    assert_eq!(again.last_run("add-10s").unwrap().total_run_count, 2);
    assert!(again.tick_at(at(27)).unwrap().sent.is_empty());
    assert!(again.tick_at(at(29)).unwrap().sent.is_empty());
    assert_eq!(again.tick_at(at(30)).unwrap().sent.len(), 1);
    // Down for a long time: a missed run is sent once, not once per missed slot.
    let late = again.tick_at(at(1000)).unwrap();
    assert_eq!(late.sent.len(), 2, "{late:?}");
    assert_eq!(app.queue_len(&queue).unwrap(), 5);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_broken_store_is_a_clear_error() {
    let url = format!("memory://{}", unique("beat4"));
    let app = App::new(&url, None).unwrap();
    let dir = temp_dir();
    let store = dir.join("bad.json");
    std::fs::write(&store, "not json").unwrap();
    let err = Beat::new(&app, entries("q"), &store).unwrap_err();
    assert!(err.to_string().contains("not a schedule store"), "{err}");
    let schedule = dir.join("schedule.toml");
    std::fs::write(
        &schedule,
        "[[entries]]\nname = \"x\"\ntask = \"t\"\nschedule = \"61 * * * *\"\n",
    )
    .unwrap();
    let err = Beat::from_file(&app, &schedule).unwrap_err();
    assert!(err.to_string().contains("61"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn two_beats_on_redis_share_one_lock() {
    let prefix = unique("braid-beat-redis");
    let url = format!("redis://127.0.0.1:6379/8?global_keyprefix={prefix}-");
    let app = App::new(&url, None).unwrap();
    let queue = unique("q");
    let dir = temp_dir();
    let mut a = Beat::new(&app, entries(&queue), dir.join("a.json")).unwrap();
    let mut b = Beat::new(&app, entries(&queue), dir.join("b.json")).unwrap();
    let mut sent = 0;
    for s in 0..=300 {
        let ta = a.tick_at(at(s)).unwrap();
        let tb = b.tick_at(at(s)).unwrap();
        assert!(ta.leader != tb.leader, "exactly one leader at {s}");
        sent += ta.sent.len() + tb.sent.len();
    }
    assert_eq!(sent, 30 + 1);
    assert_eq!(app.queue_len(&queue).unwrap(), 31);
    a.release();
    assert!(b.tick_at(at(301)).unwrap().leader);
    b.release();
    app.purge(&queue).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
