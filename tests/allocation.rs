//! A planned convolution run with caller scratch allocates nothing: every algorithm, both
//! layouts, f32 and a half type, on one worker (a counting global allocator watches the
//! calling thread).

use convkit::{Activation, Algorithm, ConvSpec, Layout, Padding, PlanOptions, Registered, f16};
use std::alloc::{GlobalAlloc, Layout as MemoryLayout, System};
use std::cell::Cell;

/// The system allocator, counting the allocations of threads that ask it to.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// thread-local cells that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: MemoryLayout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: MemoryLayout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(Cell::get)
}

fn check<T: Registered>(spec: &ConvSpec, algorithm: Algorithm) -> Option<usize> {
    let weights = vec![T::from_f64_rounded(0.25); spec.weight_len().ok()?];
    let bias = vec![T::from_f64_rounded(0.5); spec.out_channels()];
    let options = PlanOptions::new()
        .algorithm(algorithm)
        .activation(Activation::Relu);
    let plan = convkit::plan(spec, &weights, Some(&bias[..]), &options).ok()?;
    let input = vec![T::from_f64_rounded(1.0); spec.input_len().ok()?];
    let mut output = vec![T::from_f64_rounded(0.0); spec.output_len().ok()?];
    let mut scratch = vec![0.0f32; plan.scratch_len()];
    plan.run_with_scratch(&input, &mut output, &mut scratch)
        .expect("buffers of the plan's lengths");
    Some(allocations_in(|| {
        plan.run_with_scratch(&input, &mut output, &mut scratch)
            .expect("buffers of the plan's lengths");
    }))
}

#[test]
fn runs_with_caller_scratch_allocate_nothing() {
    let specs = [
        ConvSpec::new(2, 16, 24, [12, 13], [3, 3]).padding(Padding::symmetric([1, 1])),
        ConvSpec::new(1, 3, 16, [20, 20], [5, 5]).stride([2, 2]),
        ConvSpec::new(1, 24, 24, [10, 9], [3, 3])
            .groups(24)
            .padding(Padding::symmetric([1, 1])),
        ConvSpec::new(1, 32, 16, [8, 8], [1, 1]),
        ConvSpec::new(1, 4, 8, [17, 19], [3, 3]).stride([3, 3]),
        ConvSpec::new(1, 12, 20, [9, 11], [3, 3])
            .groups(2)
            .dilation([2, 1])
            .padding(Padding::symmetric([2, 1])),
    ];
    let pool = convkit_testkit::pool(1);
    let mut failures = Vec::new();
    pool.install(|| {
        for spec in specs {
            for layout in [Layout::Nchw, Layout::Nhwc] {
                let spec = spec.layout(layout);
                for algorithm in convkit::algorithms::<f32>().iter().map(|a| a.algorithm()) {
                    if algorithm == Algorithm::Reference {
                        continue;
                    }
                    for (name, count) in [
                        ("f32", check::<f32>(&spec, algorithm)),
                        ("f16", check::<f16>(&spec, algorithm)),
                    ] {
                        if let Some(count) = count.filter(|&count| count > 0) {
                            failures.push(format!(
                                "{} {name} on {spec:?}: {count} allocations",
                                algorithm.name()
                            ));
                        }
                    }
                }
            }
        }
    });
    assert!(failures.is_empty(), "{failures:#?}");
}
