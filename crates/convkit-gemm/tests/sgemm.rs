//! SGEMM against a naive triple loop on every ISA path this CPU has: every m, n and k in
//! 1..=67 (each swept with the others at edge values), large odd sizes, strides, bias and
//! activations. Integer data makes every sum exact, so results must match bit for bit.

use convkit_core::{Activation, Isa};
use convkit_gemm::{
    Columns, Epilogue, GemmJob, GemmOutput, OutputPtr, OutputTile, Packing, Sgemm, StridedMatrix,
};
use convkit_testkit::{integers, pool};
use half::{bf16, f16};
use std::ops::Range;

/// `C = A·B + biases`, then the activation, in f64 (exact for the integer data used here).
fn naive(
    [m, n, k]: [usize; 3],
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    epilogue: &Epilogue<'_>,
) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum: f64 = (0..k)
                .map(|p| f64::from(a[i * lda + p]) * f64::from(b[p * ldb + j]))
                .sum();
            sum += epilogue.row_bias.map_or(0.0, |bias| f64::from(bias[i]));
            sum += epilogue.col_bias.map_or(0.0, |bias| f64::from(bias[j]));
            c[i * n + j] = epilogue.activation.apply_f64(sum) as f32;
        }
    }
    c
}

/// The paths this CPU has that have microkernels.
fn isas() -> Vec<Isa> {
    convkit_testkit::isas()
        .iter()
        .copied()
        .filter(|isa| convkit_gemm::KernelShape::ISAS.contains(isa))
        .collect()
}

fn check(isa: Isa, dims: [usize; 3], pad: usize, epilogue: &Epilogue<'_>) {
    for kernel in convkit_gemm::KernelShape::candidates(isa) {
        check_with(Sgemm::with_kernel(kernel), dims, pad, epilogue);
        check_with(
            Sgemm::with_kernel(kernel).fit_depth(dims[2]),
            dims,
            pad,
            epilogue,
        );
    }
}

fn check_with(sgemm: Sgemm, [m, n, k]: [usize; 3], pad: usize, epilogue: &Epilogue<'_>) {
    let isa = sgemm.kernel().isa;
    let (mr, nr) = (sgemm.kernel().mr, sgemm.kernel().nr);
    let (lda, ldb, ldc) = (k + pad, n + 2 * pad, n + pad);
    let a = integers(m * lda, m + k);
    let b = integers(k * ldb, n + 1);
    let mut c = vec![f32::NAN; (m - 1) * ldc + n];
    sgemm
        .gemm([m, n, k], &a, lda, &b, ldb, &mut c, ldc, epilogue)
        .expect("valid gemm");
    let expected = naive([m, n, k], &a, lda, &b, ldb, epilogue);
    for i in 0..m {
        assert_eq!(
            &c[i * ldc..i * ldc + n],
            &expected[i * n..(i + 1) * n],
            "{isa} {mr}x{nr} m={m} n={n} k={k} pad={pad}: row {i}"
        );
    }
}

const EDGES: [usize; 5] = [1, 7, 17, 48, 67];

#[test]
fn every_m_n_and_k_up_to_67() {
    for isa in isas() {
        for sweep in 1..=67 {
            for &x in &EDGES {
                for &y in &[1, 33, 67] {
                    check(isa, [sweep, x, y], 0, &Epilogue::default());
                    check(isa, [x, sweep, y], 1, &Epilogue::default());
                    check(isa, [y, x, sweep], 0, &Epilogue::default());
                }
            }
        }
        println!("sgemm sweep passed on {isa}");
    }
}

#[test]
fn large_odd_sizes_span_several_blocks() {
    for isa in isas() {
        for dims in [
            [257, 263, 301],
            [97, 1031, 523],
            [401, 55, 777],
            [65, 300, 1500],
        ] {
            check(isa, dims, 3, &Epilogue::default());
        }
    }
}

#[test]
fn bias_and_activation_are_fused() {
    for isa in isas() {
        for activation in Activation::ALL {
            let (m, n, k) = (19, 53, 300);
            let row_bias = integers(m, 3);
            let col_bias = integers(n, 5);
            check(
                isa,
                [m, n, k],
                0,
                &Epilogue {
                    row_bias: Some(&row_bias),
                    col_bias: None,
                    activation,
                },
            );
            check(
                isa,
                [m, n, k],
                2,
                &Epilogue {
                    row_bias: None,
                    col_bias: Some(&col_bias),
                    activation,
                },
            );
        }
    }
}

#[test]
fn single_thread_and_pool_give_identical_bits() {
    for isa in isas() {
        let (m, n, k) = (130, 700, 260);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let run = |threads| {
            let pool = pool(threads);
            let mut c = vec![0.0f32; m * n];
            pool.install(|| {
                Sgemm::new(isa).gemm([m, n, k], &a, k, &b, n, &mut c, n, &Epilogue::default())
            })
            .unwrap();
            c
        };
        assert_eq!(run(1), run(2), "{isa}");
    }
}

#[test]
fn strided_operands_are_read_transposed_without_copies() {
    // Dense-layer products: Y = X·Wᵀ, dX = dY·W, dW = dYᵀ·X, with X n×i, W o×i, dY n×o.
    for isa in isas() {
        let sgemm = Sgemm::new(isa);
        let (batch, inputs, outputs) = (33, 70, 19);
        let x = integers(batch * inputs, 1);
        let w = integers(outputs * inputs, 2);
        let dy = integers(batch * outputs, 3);
        let transpose = |data: &[f32], rows: usize, cols: usize| -> Vec<f32> {
            (0..cols * rows)
                .map(|i| data[(i % rows) * cols + i / rows])
                .collect()
        };
        let cases = [
            // (dims, A view, B view, plain row-major A, plain row-major B)
            (
                [batch, outputs, inputs],
                StridedMatrix::new(&x, inputs, 1),
                StridedMatrix::new(&w, inputs, 1),
                x.clone(),
                transpose(&w, outputs, inputs),
            ),
            (
                [batch, inputs, outputs],
                StridedMatrix::new(&dy, outputs, 1),
                StridedMatrix::new(&w, 1, inputs),
                dy.clone(),
                w.clone(),
            ),
            (
                [outputs, inputs, batch],
                StridedMatrix::new(&dy, 1, outputs),
                StridedMatrix::new(&x, 1, inputs),
                transpose(&dy, batch, outputs),
                x.clone(),
            ),
        ];
        for ([m, n, k], a, b, plain_a, plain_b) in cases {
            let mut c = vec![f32::NAN; m * n];
            let mut scratch = vec![f32::NAN; sgemm.scratch_len(2)];
            sgemm
                .gemm_strided(
                    [m, n, k],
                    a,
                    b,
                    &mut c,
                    n,
                    &Epilogue::default(),
                    &mut scratch,
                )
                .expect("valid strided gemm");
            let expected = naive([m, n, k], &plain_a, k, &plain_b, n, &Epilogue::default());
            assert_eq!(c, expected, "{isa} m={m} n={n} k={k}");
        }
        let mut c = vec![0.0; 4];
        let short = sgemm.gemm_strided(
            [2, 2, 2],
            StridedMatrix::new(&x[..4], 2, 1),
            StridedMatrix::new(&w[..4], 1, 2),
            &mut c,
            2,
            &Epilogue::default(),
            &mut [0.0; 8],
        );
        assert!(short.is_err(), "{isa}: scratch below one worker's share");
    }
}

#[test]
fn bad_arguments_are_errors() {
    let sgemm = Sgemm::new(Isa::Scalar);
    let mut c = [0.0f32; 4];
    // (dims, A length, C length): A too short, zero depth, C too short.
    for (dims, a_len, c_len) in [([2, 2, 2], 3, 4), ([2, 2, 0], 4, 4), ([2, 2, 2], 4, 3)] {
        let result = sgemm.gemm(
            dims,
            &[0.0; 4][..a_len],
            2,
            &[0.0; 4],
            2,
            &mut c[..c_len],
            2,
            &Epilogue::default(),
        );
        assert!(result.is_err(), "{dims:?} A {a_len} C {c_len}");
    }
}

#[test]
fn pitched_columns_drop_the_wrapped_ones() {
    for isa in isas() {
        for kernel in convkit_gemm::KernelShape::candidates(isa) {
            let sgemm = Sgemm::with_kernel(kernel);
            for (m, k, pitch, valid, lines) in
                [(13, 40, 11, 8, 7), (8, 300, 58, 56, 5), (30, 9, 3, 1, 40)]
            {
                let n = (lines - 1) * pitch + valid;
                let a = integers(m * k, 1);
                let b = integers(k * n, 2);
                let row_bias = integers(m, 3);
                let epilogue = Epilogue {
                    row_bias: Some(&row_bias),
                    col_bias: None,
                    activation: Activation::Relu,
                };
                let expected = naive([m, n, k], &a, k, &b, n, &epilogue);
                let ldc = lines * valid + 5;
                let mut c = vec![f32::NAN; m * ldc];
                let (a_view, b_view) = (StridedMatrix::new(&a, k, 1), StridedMatrix::new(&b, 1, n));
                let job = GemmJob {
                    m,
                    n,
                    k,
                    a: &a_view,
                    b: &b_view,
                    c: OutputTile {
                        ptr: OutputPtr::F32(c.as_mut_ptr()),
                        ldc,
                        columns: Columns::Pitched { pitch, valid },
                    },
                    epilogue,
                };
                let mut scratch = vec![f32::NAN; sgemm.scratch_len(2)];
                // SAFETY: the views cover m×k and n×k; C holds m rows of `lines·valid` mapped
                // columns at stride ldc; the row bias holds m values; no column bias.
                unsafe { sgemm.run(&[job], &mut scratch) };
                for i in 0..m {
                    for q in 0..n {
                        let (line, column) = (q / pitch, q % pitch);
                        if column < valid {
                            assert_eq!(
                                c[i * ldc + line * valid + column],
                                expected[i * n + q],
                                "{isa} {}x{} row {i} column {q}",
                                kernel.mr,
                                kernel.nr
                            );
                        }
                    }
                    assert!(
                        c[i * ldc + lines * valid..(i + 1) * ldc]
                            .iter()
                            .all(|v| v.is_nan()),
                        "wrote past the mapped columns"
                    );
                }
            }
        }
    }
}

#[test]
fn jobs_of_different_shapes_share_one_run() {
    // Three products of different shapes in one call (the driver maps task numbers to jobs
    // by walking them), on one and on two workers, each big enough to be split.
    let shapes = [[200, 150, 90], [37, 400, 33], [96, 96, 300]];
    let operands: Vec<(Vec<f32>, Vec<f32>)> = shapes
        .iter()
        .enumerate()
        .map(|(s, &[m, n, k])| (integers(m * k, s + 1), integers(k * n, s + 5)))
        .collect();
    for isa in isas() {
        let sgemm = Sgemm::new(isa);
        for threads in [1, 2] {
            let views: Vec<(StridedMatrix<'_>, StridedMatrix<'_>)> = shapes
                .iter()
                .zip(&operands)
                .map(|(&[_, n, k], (a, b))| {
                    (StridedMatrix::new(a, k, 1), StridedMatrix::new(b, 1, n))
                })
                .collect();
            let mut outputs: Vec<Vec<f32>> = shapes
                .iter()
                .map(|&[m, n, _]| vec![f32::NAN; m * n])
                .collect();
            let mut scratch = vec![f32::NAN; sgemm.scratch_len(threads)];
            let pool = pool(threads);
            pool.install(|| {
                let mut pointers = outputs.iter_mut().map(|c| c.as_mut_ptr());
                let jobs: [GemmJob<'_>; 3] = std::array::from_fn(|j| {
                    let [m, n, k] = shapes[j];
                    GemmJob {
                        m,
                        n,
                        k,
                        a: &views[j].0,
                        b: &views[j].1,
                        c: OutputTile {
                            ptr: OutputPtr::F32(pointers.next().expect("one output per job")),
                            ldc: n,
                            columns: Columns::Contiguous,
                        },
                        epilogue: Epilogue::default(),
                    }
                });
                // SAFETY: each view covers its m×k or n×k; each C holds m rows of n values
                // and belongs to one job; no biases; scratch for `threads` workers.
                unsafe { sgemm.run(&jobs, &mut scratch) };
            });
            for (j, &[m, n, k]) in shapes.iter().enumerate() {
                let (a, b) = &operands[j];
                let expected = naive([m, n, k], a, k, b, n, &Epilogue::default());
                assert_eq!(outputs[j], expected, "{isa} {threads} threads, job {j}");
            }
        }
    }
}

/// An A read in place at tables of offsets: row `i` of depth `p` at `data[outer[i] +
/// steps[p]]`, rows and depth both unevenly spaced (as pixels of a padded image).
struct ScatteredRows {
    data: Vec<f32>,
    outer: Vec<u32>,
    steps: Vec<u32>,
}

impl ScatteredRows {
    fn new(m: usize, k: usize) -> ScatteredRows {
        // Rows in runs of 5 with gaps of 3; depth steps alternately 97 and 131 apart.
        let outer: Vec<u32> = (0..m).map(|i| (i / 5 * 8 + i % 5) as u32).collect();
        let steps: Vec<u32> = (0..k).map(|p| (p / 2 * 228 + p % 2 * 97) as u32).collect();
        let len = (outer[m - 1] + steps[k - 1]) as usize + 1;
        ScatteredRows {
            data: integers(len, m + k),
            outer,
            steps,
        }
    }

    fn value(&self, i: usize, p: usize) -> f32 {
        self.data[(self.outer[i] + self.steps[p]) as usize]
    }
}

impl convkit_gemm::PanelSource for ScatteredRows {
    fn pack(
        &self,
        outer: std::ops::Range<usize>,
        depth: std::ops::Range<usize>,
        width: usize,
        dst: &mut [f32],
    ) {
        let mut index = 0;
        for first in outer.clone().step_by(width) {
            for p in depth.clone() {
                for i in first..first + width {
                    dst[index] = if i < outer.end { self.value(i, p) } else { 0.0 };
                    index += 1;
                }
            }
        }
    }

    fn stepped_rows(&self) -> Option<convkit_gemm::SteppedRows<'_>> {
        Some(convkit_gemm::SteppedRows {
            data: &self.data,
            outer: &self.outer,
            steps: &self.steps,
        })
    }
}

#[test]
fn stepped_rows_of_a_into_a_transposed_c() {
    // A read at tables of offsets, B packed here or prepacked (streamed), C stored
    // transposed with both biases and an activation, over several depth blocks.
    for isa in isas() {
        for kernel in convkit_gemm::KernelShape::candidates(isa) {
            for [m, n, k] in [
                [1, 1, 1],
                [13, 40, 300],
                [49, 70, 33],
                [30, 17, 520],
                [14, 130, 600],
            ] {
                let sgemm = Sgemm::with_kernel(kernel);
                let a = ScatteredRows::new(m, k);
                let dense: Vec<f32> = (0..m * k).map(|x| a.value(x / k, x % k)).collect();
                let b = integers(k * n, 2);
                let (row_bias, col_bias) = (integers(m, 3), integers(n, 4));
                let epilogue = Epilogue {
                    row_bias: Some(&row_bias),
                    col_bias: Some(&col_bias),
                    activation: Activation::Relu,
                };
                let expected = naive([m, n, k], &dense, k, &b, n, &epilogue);
                let b_view = StridedMatrix::new(&b, 1, n);
                let blocking = sgemm.blocking();
                let prepacked =
                    convkit_gemm::PackedPanels::new(&b_view, n, k, kernel.nr, blocking.kc);
                let b_sources: [&dyn convkit_gemm::PanelSource; 2] = [&b_view, &prepacked];
                for b_source in b_sources {
                    let ldc = m + 3;
                    let mut c = vec![f32::NAN; n * ldc];
                    let job = GemmJob {
                        m,
                        n,
                        k,
                        a: &a,
                        b: b_source,
                        c: OutputTile {
                            ptr: OutputPtr::F32(c.as_mut_ptr()),
                            ldc,
                            columns: Columns::Transposed,
                        },
                        epilogue,
                    };
                    let mut scratch = vec![f32::NAN; sgemm.scratch_len(2)];
                    // SAFETY: A's tables index inside its data for m×k, B covers n×k; C
                    // holds n columns of m values at stride ldc; the biases hold m and n.
                    unsafe { sgemm.run(&[job], &mut scratch) };
                    for j in 0..n {
                        for i in 0..m {
                            assert_eq!(
                                c[j * ldc + i],
                                expected[i * n + j],
                                "{isa} {}x{} {m}x{n}x{k}: ({i}, {j})",
                                kernel.mr,
                                kernel.nr
                            );
                        }
                        assert!(c[j * ldc + m..(j + 1) * ldc].iter().all(|v| v.is_nan()));
                    }
                }
            }
        }
    }
}

/// The last one or two columns of a row of tiles (a 7x7 image's 49th pixel, a GEMV's only
/// column) run the edge-columns kernels where A is prepacked: B in place or prepacked
/// (streamed), C contiguous or transposed, over several depth blocks, every tile shape.
#[test]
fn edge_columns_of_a_prepacked_a() {
    for isa in isas() {
        for kernel in convkit_gemm::KernelShape::candidates(isa) {
            let sgemm = Sgemm::with_kernel(kernel);
            let blocking = sgemm.blocking();
            for [m, n, k] in [
                [1, 1, 1],
                [13, 1, 300],
                [29, 2, 41],
                [7, 17, 600],
                [50, 49, 90],
                [6, 66, 3],
                [17, 33, 2 * blocking.kc + 5],
            ] {
                let a = integers(m * k, 1);
                let b = integers(k * n, 2);
                let (row_bias, col_bias) = (integers(m, 3), integers(n, 4));
                let epilogue = Epilogue {
                    row_bias: Some(&row_bias),
                    col_bias: Some(&col_bias),
                    activation: Activation::Relu,
                };
                let expected = naive([m, n, k], &a, k, &b, n, &epilogue);
                let a_view = StridedMatrix::new(&a, k, 1);
                let a_packed =
                    convkit_gemm::PackedPanels::new(&a_view, m, k, kernel.mr, blocking.kc);
                let b_view = StridedMatrix::new(&b, 1, n);
                let b_packed =
                    convkit_gemm::PackedPanels::new(&b_view, n, k, kernel.nr, blocking.kc);
                let b_sources: [&dyn convkit_gemm::PanelSource; 2] = [&b_view, &b_packed];
                for (b_source, columns) in b_sources
                    .into_iter()
                    .flat_map(|b| [Columns::Contiguous, Columns::Transposed].map(|c| (b, c)))
                {
                    let transposed = matches!(columns, Columns::Transposed);
                    let (ldc, len) = if transposed {
                        (m + 3, n * (m + 3))
                    } else {
                        (n + 3, m * (n + 3))
                    };
                    let mut c = vec![f32::NAN; len];
                    let job = GemmJob {
                        m,
                        n,
                        k,
                        a: &a_packed,
                        b: b_source,
                        c: OutputTile {
                            ptr: OutputPtr::F32(c.as_mut_ptr()),
                            ldc,
                            columns,
                        },
                        epilogue,
                    };
                    let mut scratch = vec![f32::NAN; sgemm.scratch_len(1)];
                    // SAFETY: A and B cover m×k and k×n; C holds m×n (or n×m) at stride
                    // ldc; the biases hold m and n values.
                    unsafe { sgemm.run(&[job], &mut scratch) };
                    for i in 0..m {
                        for j in 0..n {
                            let got = if transposed {
                                c[j * ldc + i]
                            } else {
                                c[i * ldc + j]
                            };
                            assert_eq!(
                                got,
                                expected[i * n + j],
                                "{isa} {}x{} {m}x{n}x{k} transposed {transposed}: ({i}, {j})",
                                kernel.mr,
                                kernel.nr
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A C stored in half precision, rounded once: from the microkernels' registers (contiguous,
/// one depth block: no staged block reserved) or staged in f32, for every column layout,
/// over several depth blocks and with more values than one staged block holds (cut by
/// columns where B is packed, by rows where it is prepacked), on one and two workers.
/// Integer data makes the f32 sums exact, so each value must be the exact sum rounded once
/// to `T`.
fn check_half_precision_c<T: GemmOutput + PartialEq + std::fmt::Debug>() {
    let layouts = [
        Columns::Contiguous,
        Columns::Pitched {
            pitch: 19,
            valid: 16,
        },
        Columns::Transposed,
    ];
    for isa in isas() {
        for kernel in convkit_gemm::KernelShape::candidates(isa) {
            for ([m, n, k], columns, threads, packed_b) in [
                [7, 5, 3],
                [150, 95, 300],
                [61, 500, 40],
                [400, 70, 20],
                [50, 33, 70],
                [9, 18, 131],
            ]
            .into_iter()
            .flat_map(|dims| layouts.map(|columns| (dims, columns)))
            .flat_map(|(dims, columns)| [1, 2].map(|threads| (dims, columns, threads)))
            .flat_map(|(dims, columns, threads)| {
                [true, false].map(|packed_b| (dims, columns, threads, packed_b))
            }) {
                let sgemm = Sgemm::with_kernel(kernel);
                let sgemm = sgemm.with_packing(Packing {
                    a: true,
                    b: packed_b,
                    c: sgemm.stages_half_c(columns, k),
                });
                let a = integers(m * k, 1);
                let b = integers(k * n, 2);
                let (row_bias, col_bias) = (integers(m, 3), integers(n, 4));
                let epilogue = Epilogue {
                    row_bias: Some(&row_bias),
                    col_bias: (!matches!(columns, Columns::Pitched { .. }))
                        .then_some(&col_bias[..]),
                    activation: Activation::Relu,
                };
                let exact = naive([m, n, k], &a, k, &b, n, &epilogue);
                // C's row stride (its rows: columns when transposed), and where element
                // (i, j) goes, if kept.
                let ldc = match columns {
                    Columns::Transposed => m,
                    Columns::Contiguous => n,
                    Columns::Pitched { pitch, valid } => n.div_ceil(pitch) * valid,
                };
                let place = |i: usize, j: usize| match columns {
                    Columns::Contiguous => Some(i * ldc + j),
                    Columns::Transposed => Some(j * ldc + i),
                    Columns::Pitched { pitch, valid } => {
                        (j % pitch < valid).then_some(i * ldc + j / pitch * valid + j % pitch)
                    }
                };
                let len = match columns {
                    Columns::Transposed => n * ldc,
                    _ => m * ldc,
                };
                let mut c = vec![T::nan(); len];
                let (a_view, b_view) = (StridedMatrix::new(&a, k, 1), StridedMatrix::new(&b, 1, n));
                let prepacked =
                    convkit_gemm::PackedPanels::new(&b_view, n, k, kernel.nr, sgemm.blocking().kc);
                let b_source: &dyn convkit_gemm::PanelSource = match packed_b {
                    true => &b_view,
                    false => &prepacked,
                };
                let mut scratch = vec![f32::NAN; sgemm.scratch_len(threads)];
                let pool = pool(threads);
                pool.install(|| {
                    let job = GemmJob {
                        m,
                        n,
                        k,
                        a: &a_view,
                        b: b_source,
                        c: OutputTile {
                            ptr: T::output_ptr(c.as_mut_ptr()),
                            ldc,
                            columns,
                        },
                        epilogue,
                    };
                    // SAFETY: the views cover m×k and n×k; C holds every mapped element of
                    // m×n at `ldc`; the biases hold m and n values (no column bias on the
                    // pitched C); scratch for `threads` workers, with the staged block.
                    unsafe { sgemm.run(&[job], &mut scratch) }
                });
                for i in 0..m {
                    for j in 0..n {
                        if let Some(at) = place(i, j) {
                            let mut expected = [T::nan()];
                            T::narrow(&exact[i * n + j..][..1], &mut expected);
                            assert_eq!(
                                c[at], expected[0],
                                "{isa} {}x{} {m}x{n}x{k} {columns:?} ({i}, {j})",
                                kernel.mr, kernel.nr
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn half_precision_c_is_rounded_once() {
    check_half_precision_c::<f16>();
    check_half_precision_c::<bf16>();
}

/// An A (row-major, `lda` apart) that asks for its blocks as rows
/// ([`PanelSource::pack_rows`](convkit_gemm::PanelSource::pack_rows)), as a half-precision
/// NHWC input does: the SGEMM must never ask for its panels.
struct RowsOnRequest<'a>(&'a [f32], usize);

impl convkit_gemm::PanelSource for RowsOnRequest<'_> {
    fn pack(&self, _: Range<usize>, _: Range<usize>, _: usize, _: &mut [f32]) {
        panic!("a source that packs rows is never packed into panels");
    }

    fn pack_rows(&self, outer: Range<usize>, depth: Range<usize>, dst: &mut [f32]) -> bool {
        let RowsOnRequest(data, lda) = *self;
        for (i, row) in outer.zip(dst.chunks_exact_mut(depth.len())) {
            row.copy_from_slice(&data[i * lda + depth.start..i * lda + depth.end]);
        }
        true
    }
}

#[test]
fn a_packed_as_rows_over_several_blocks() {
    for isa in isas() {
        for kernel in convkit_gemm::KernelShape::candidates(isa) {
            for [m, n, k] in [[1, 1, 1], [13, 40, 300], [205, 70, 33], [30, 17, 520]] {
                let sgemm = Sgemm::with_kernel(kernel).with_packing(Packing {
                    a: true,
                    b: false,
                    c: false,
                });
                let lda = k + 2;
                let a = integers(m * lda, 5);
                let b = integers(k * n, 6);
                let row_bias = integers(m, 7);
                let epilogue = Epilogue {
                    row_bias: Some(&row_bias),
                    col_bias: None,
                    activation: Activation::Relu,
                };
                let expected = naive([m, n, k], &a, lda, &b, n, &epilogue);
                let a_source = RowsOnRequest(&a, lda);
                let b_view = StridedMatrix::new(&b, 1, n);
                let prepacked =
                    convkit_gemm::PackedPanels::new(&b_view, n, k, kernel.nr, sgemm.blocking().kc);
                for threads in [1, 2] {
                    let mut c = vec![f32::NAN; m * n];
                    let mut scratch = vec![f32::NAN; sgemm.scratch_len(threads)];
                    let pool = pool(threads);
                    pool.install(|| {
                        let job = GemmJob {
                            m,
                            n,
                            k,
                            a: &a_source,
                            b: &prepacked,
                            c: OutputTile {
                                ptr: OutputPtr::F32(c.as_mut_ptr()),
                                ldc: n,
                                columns: Columns::Contiguous,
                            },
                            epilogue,
                        };
                        // SAFETY: A's rows hold m×k at `lda`, the prepacked B n×k; C holds
                        // m×n; the row bias m values; scratch for `threads` workers.
                        unsafe { sgemm.run(&[job], &mut scratch) }
                    });
                    assert_eq!(
                        c, expected,
                        "{isa} {}x{} {m}x{n}x{k} on {threads} threads",
                        kernel.mr, kernel.nr
                    );
                }
            }
        }
    }
}
