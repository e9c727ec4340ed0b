use super::*;
use crate::settings::Settings;

fn settings(steps: &[u8]) -> Settings {
    let mut s = Settings::of(None);
    s.enabled = true;
    s.steps = steps.to_vec();
    s.target_error_rate = Some(0.01);
    s
}

fn ok(samples: u64) -> Measurement {
    Measurement {
        samples,
        error_rate: Some(0.0),
        p99: None,
    }
}

#[test]
fn budget_needs_min_requests() {
    let now = Instant::now();
    let mut m = Machine::new(settings(&[10]), now);
    m.budget(19, Some(0.0), now);
    assert_eq!(m.phase, Phase::Progressing);
    m.budget(20, Some(0.985), now);
    assert_eq!(m.phase, Phase::Progressing);
    m.budget(20, Some(0.98), now);
    assert_eq!(m.phase, Phase::RolledBack);
    assert_eq!(
        m.route(),
        Route {
            weight: 0,
            matched: false,
            rules: false
        }
    );
}

#[test]
fn a_pass_resets_the_failed_checks() {
    let now = Instant::now();
    let mut m = Machine::new(settings(&[]), now);
    let bad = Measurement {
        samples: 100,
        error_rate: Some(0.5),
        p99: None,
    };
    m.analyse(bad, InsufficientSamples::Hold, now);
    m.analyse(bad, InsufficientSamples::Hold, now);
    assert_eq!(m.failed_checks, 2);
    m.analyse(ok(100), InsufficientSamples::Hold, now);
    assert_eq!(m.failed_checks, 0);
    m.analyse(ok(1), InsufficientSamples::Hold, now);
    assert_eq!(m.transitions.held, 1);
}

#[test]
fn new_steps_never_raise_the_weight() {
    let now = Instant::now();
    let mut m = Machine::new(settings(&[5, 10, 20]), now);
    m.analyse(ok(100), InsufficientSamples::Hold, now);
    assert_eq!(m.weight, 10);
    m.update(settings(&[8, 12]), 2, now);
    assert_eq!((m.step, m.weight), (Some(0), 8));
    m.update(settings(&[30, 60]), 3, now);
    assert_eq!((m.step, m.weight), (Some(0), 30));
    m.update(settings(&[]), 4, now);
    assert_eq!((m.step, m.weight), (None, 0));
}
