//! Validation and planning of flows of 10, 100 and 1,000 environments (the
//! API limit) in three shapes:
//!
//! - `wide`: every step depends on the trigger environment (one big wave);
//! - `deep`: a chain, each step depending on the one before (one wave per step);
//! - `random`: each step depends on one to three earlier environments.
//!
//! Every flow is valid, so each iteration runs every rule, the cycle check
//! and the plan. Run with `cargo bench --bench flow`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use promoflow::domain::flow::{FlowSpec, KnownNames, Limits, Step, validate_with_limits};

#[derive(Clone, Copy)]
enum Shape {
    Wide,
    Deep,
    Random,
}

impl Shape {
    const ALL: [Shape; 3] = [Shape::Wide, Shape::Deep, Shape::Random];

    fn name(self) -> &'static str {
        match self {
            Shape::Wide => "wide",
            Shape::Deep => "deep",
            Shape::Random => "random",
        }
    }
}

/// A small deterministic generator (xorshift64), so every run measures the
/// same graphs without a dependency on a random-number crate.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // n is at most a few thousand: the modulo bias is irrelevant here.
        (self.0 % n as u64) as usize
    }
}

/// A valid flow of `steps` steps plus the trigger, and a catalog that knows
/// all its environments.
fn flow(shape: Shape, steps: usize) -> (FlowSpec, KnownNames) {
    let names: Vec<String> = (0..=steps).map(|i| format!("env-{i}")).collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let steps = (1..=steps)
        .map(|i| {
            let depends_on = match shape {
                Shape::Wide => vec![names[0].clone()],
                Shape::Deep => vec![names[i - 1].clone()],
                Shape::Random => {
                    let mut deps: Vec<String> =
                        (0..3).map(|_| names[rng.below(i)].clone()).collect();
                    deps.sort();
                    deps.dedup();
                    deps
                }
            };
            Step {
                environment: names[i].clone(),
                depends_on,
                ..Step::default()
            }
        })
        .collect();
    let spec = FlowSpec {
        name: "bench".to_owned(),
        trigger_environment: names[0].clone(),
        steps,
        ..FlowSpec::default()
    };
    (spec, KnownNames::new(names, Vec::<String>::new()))
}

fn validate_and_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_and_plan");
    // 10,000 is over the API's default limit: a server started with
    // `--max-flow-steps 10000` accepts such flows.
    let limits = Limits::with_max_steps(10_000);
    for steps in [10, 100, 1_000, 10_000] {
        group.throughput(Throughput::Elements(steps as u64));
        for shape in Shape::ALL {
            let (spec, catalog) = flow(shape, steps);
            assert!(
                validate_with_limits(&spec, &catalog, limits).is_ok(),
                "benchmark flows are valid"
            );
            group.bench_with_input(BenchmarkId::new(shape.name(), steps), &spec, |b, spec| {
                b.iter(|| validate_with_limits(black_box(spec), &catalog, limits));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, validate_and_plan);
criterion_main!(benches);
