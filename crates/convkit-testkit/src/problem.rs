//! Convolution problems: a spec, an epilogue, and deterministic data.

use arbitrary::{Arbitrary, Unstructured};
use convkit_core::{Activation, ConvShape, ConvSpec, Element, Layout, Padding};
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestRng};

/// What kind of numbers fill the tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Values {
    /// Uniform in `[-1, 1)`: checks against the error bound.
    Real,
    /// Small integers (inputs in −4..=4, weights in −3..=3, bias in −8..=8): every partial sum
    /// is exact in f32, so exact algorithms must match the reference bit for bit.
    Integer,
}

/// A convolution to check: the spec, bias and activation, and a seed for the data.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvProblem {
    /// The convolution.
    pub spec: ConvSpec,
    /// Whether a bias vector is passed.
    pub has_bias: bool,
    /// The fused activation.
    pub activation: Activation,
    /// Kind of data.
    pub values: Values,
    /// Seed of the data generator.
    pub seed: u64,
}

/// Multiply-accumulates a generated problem may cost, so that the f64 reference checks a
/// case in milliseconds.
pub const MAC_BUDGET: u64 = 1 << 20;

/// The raw draws a problem is built from; [`ProblemParams::build`] turns them into a valid
/// problem. Shared by the proptest strategy and the `Arbitrary` impl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProblemParams {
    /// 1..=4.
    pub batch: usize,
    /// 0: one group; 1: 2..=4 groups; 2: depthwise.
    pub group_mode: u8,
    /// 2..=4, used when `group_mode == 1`.
    pub groups: usize,
    /// Input channels per group (or channels for depthwise), 1..=40.
    pub in_per_group: usize,
    /// Output channels per group (or the depthwise multiplier), 1..=40.
    pub out_per_group: usize,
    /// 1..=7 each.
    pub kernel: [usize; 2],
    /// 1..=4 each.
    pub stride: [usize; 2],
    /// 1..=3 each.
    pub dilation: [usize; 2],
    /// Top, bottom, left, right: each is taken modulo (kernel extent + 1), so 0..=kernel.
    pub padding: [usize; 4],
    /// Target output height 1..=8 and width 1..=24 (1..=72 for depthwise layers) before fitting the budget.
    pub output: [usize; 2],
    /// Extra input rows/columns that the stride skips, 0..stride.
    pub remainder: [usize; 2],
    /// NHWC instead of NCHW.
    pub nhwc: bool,
    /// Pass a bias.
    pub has_bias: bool,
    /// Index into `Activation::ALL`.
    pub activation: usize,
    /// Integer data.
    pub integer: bool,
    /// Data seed.
    pub seed: u64,
    /// Force Winograd's domain: a 3x3 window with stride 1 and dilation 1, or (half of
    /// them) a 1x3 window at row stride 1 and column stride 1 (column dilation 1 to 3) or 2.
    pub winograd: bool,
    /// Force a 1x1 window without padding (a GEMM on the input itself, or on its subsampled
    /// pixels: half of them strided), which the free draws almost never make; ignored with
    /// `winograd`.
    pub pointwise: bool,
}

impl ProblemParams {
    /// A valid problem from these draws (out-of-range draws are wrapped into range), shrunk
    /// until it fits [`MAC_BUDGET`].
    pub fn build(self) -> ConvProblem {
        let wrap = |value: usize, low: usize, high: usize| low + value % (high - low + 1);
        let mut batch = wrap(self.batch, 1, 4);
        let (mut groups, mut in_per_group, mut out_per_group) = match self.group_mode % 3 {
            0 => (
                1,
                wrap(self.in_per_group, 1, 40),
                wrap(self.out_per_group, 1, 40),
            ),
            1 => {
                let groups = wrap(self.groups, 2, 4);
                let max = 40 / groups;
                (
                    groups,
                    wrap(self.in_per_group, 1, max),
                    wrap(self.out_per_group, 1, max),
                )
            }
            _ => (
                wrap(self.in_per_group, 1, 40),
                1,
                wrap(self.out_per_group, 1, 2),
            ),
        };
        let (kernel, stride, dilation) = if self.winograd {
            if self.kernel[0] % 2 == 1 {
                // Column dilation only at column stride 1 (the dilated rows' phases).
                let stride = wrap(self.stride[1], 1, 2);
                let dilation = if stride == 1 {
                    wrap(self.dilation[1], 1, 3)
                } else {
                    1
                };
                (
                    [1, 3],
                    [1, stride],
                    [wrap(self.dilation[0], 1, 3), dilation],
                )
            } else {
                // Stride 2 in both directions: the 2-D polyphase form.
                let stride = wrap(self.stride[0], 1, 2);
                ([3, 3], [stride, stride], [1, 1])
            }
        } else if self.pointwise {
            // Half of them strided (ResNet's projections, strided 1x1 heads).
            let strided = (self.stride[0] + self.stride[1]) % 2 == 1;
            let stride = if strided {
                self.stride.map(|s| wrap(s, 1, 3))
            } else {
                [1, 1]
            };
            ([1, 1], stride, [1, 1])
        } else {
            (
                self.kernel.map(|k| wrap(k, 1, 7)),
                self.stride.map(|s| wrap(s, 1, 4)),
                self.dilation.map(|d| wrap(d, 1, 3)),
            )
        };
        let extent = [0, 1].map(|a| dilation[a] * (kernel[a] - 1) + 1);
        let pointwise = self.pointwise && !self.winograd;
        let pad = |i: usize, axis: usize| {
            if pointwise {
                0
            } else {
                self.padding[i] % (kernel[axis] + 1)
            }
        };
        let padding = Padding {
            top: pad(0, 0),
            bottom: pad(1, 0),
            left: pad(2, 1),
            right: pad(3, 1),
        };
        // Depthwise layers are cheap: drawn up to three times as wide, so that rows of several
        // vectors (the per-column NCHW kernel's) come up beside short ones (channel blocks').
        let depthwise = self.group_mode % 3 == 2 && out_per_group == 1;
        let widest = if depthwise { 72 } else { 24 };
        let mut output = [wrap(self.output[0], 1, 8), wrap(self.output[1], 1, widest)];

        let layout = if self.nhwc {
            Layout::Nhwc
        } else {
            Layout::Nchw
        };
        // Smallest input giving `output` pixels, plus a remainder the stride skips. (When the
        // padding alone exceeds that, the input is one pixel and the output comes out larger.)
        let make_spec =
            |batch: usize, groups: usize, inp: usize, out: usize, output: [usize; 2]| {
                let input = [0, 1].map(|a| {
                    let pads = if a == 0 {
                        padding.top + padding.bottom
                    } else {
                        padding.left + padding.right
                    };
                    let needed =
                        (output[a] - 1) * stride[a] + extent[a] + self.remainder[a] % stride[a];
                    needed.saturating_sub(pads).max(1)
                });
                ConvSpec::new(batch, groups * inp, groups * out, input, kernel)
                    .stride(stride)
                    .dilation(dilation)
                    .padding(padding)
                    .groups(groups)
                    .layout(layout)
            };
        let macs = |spec: &ConvSpec| spec.flops().map_or(u64::MAX, |flops| flops / 2);
        let mut spec = make_spec(batch, groups, in_per_group, out_per_group, output);
        while macs(&spec) > MAC_BUDGET {
            if batch > 1 {
                batch -= 1;
            } else if output[1] > 4 {
                output[1] = output[1].div_ceil(2);
            } else if output[0] > 2 {
                output[0] = output[0].div_ceil(2);
            } else if out_per_group > 1 {
                out_per_group = out_per_group.div_ceil(2);
            } else if in_per_group > 1 {
                in_per_group = in_per_group.div_ceil(2);
            } else {
                groups = groups.div_ceil(2);
            }
            spec = make_spec(batch, groups, in_per_group, out_per_group, output);
        }
        ConvProblem {
            spec,
            has_bias: self.has_bias,
            activation: Activation::ALL[self.activation % Activation::ALL.len()],
            values: if self.integer {
                Values::Integer
            } else {
                Values::Real
            },
            seed: self.seed,
        }
    }
}

/// The proptest strategy over every parameter (see [`ProblemParams`]).
pub fn conv_problem() -> impl Strategy<Value = ConvProblem> {
    problems(false)
}

/// The strategy restricted to Winograd's domain (3x3 windows with stride 1 and dilation 1,
/// 1x3 windows at column stride 1 or 2); everything else varies as in [`conv_problem`].
pub fn winograd_problem() -> impl Strategy<Value = ConvProblem> {
    problems(true)
}

fn problems(winograd: bool) -> impl Strategy<Value = ConvProblem> {
    let channels = (1usize..=4, 0u8..3, 2usize..=4, 1usize..=40, 1usize..=40);
    let window = (
        [1usize..=7, 1usize..=7],
        [1usize..=4, 1usize..=4],
        [1usize..=3, 1usize..=3],
        [0usize..=7, 0usize..=7, 0usize..=7, 0usize..=7],
        [1usize..=8, 1usize..=72],
        [0usize..4, 0usize..4],
    );
    let epilogue = (
        any::<bool>(),
        any::<bool>(),
        0..Activation::ALL.len(),
        any::<bool>(),
        any::<u64>(),
    );
    // One problem in eight pointwise.
    let pointwise = (0u8..8).prop_map(|draw| draw == 0);
    (channels, window, epilogue, pointwise).prop_map(
        move |(
            (batch, group_mode, groups, in_per_group, out_per_group),
            (kernel, stride, dilation, padding, output, remainder),
            (nhwc, has_bias, activation, integer, seed),
            pointwise,
        )| {
            ProblemParams {
                batch,
                group_mode,
                groups,
                in_per_group,
                out_per_group,
                kernel,
                stride,
                dilation,
                padding,
                output,
                remainder,
                nhwc,
                has_bias,
                activation,
                integer,
                seed,
                winograd,
                pointwise,
            }
            .build()
        },
    )
}

impl<'a> Arbitrary<'a> for ConvProblem {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<ConvProblem> {
        let mut small =
            |high: u8| -> arbitrary::Result<usize> { Ok(usize::from(u.int_in_range(0..=high)?)) };
        let params = ProblemParams {
            batch: small(3)?,
            group_mode: small(2)? as u8,
            groups: small(2)?,
            in_per_group: small(39)?,
            out_per_group: small(39)?,
            kernel: [small(6)?, small(6)?],
            stride: [small(3)?, small(3)?],
            dilation: [small(2)?, small(2)?],
            padding: [small(7)?, small(7)?, small(7)?, small(7)?],
            output: [small(7)?, small(71)?],
            remainder: [small(3)?, small(3)?],
            nhwc: small(1)? == 1,
            has_bias: small(1)? == 1,
            activation: small(Activation::ALL.len() as u8 - 1)?,
            integer: small(1)? == 1,
            seed: 0,
            // A quarter of the problems in Winograd's domain, which is rare otherwise.
            winograd: small(3)? == 0,
            // An eighth pointwise (1x1, unpadded, half of them strided), as rare otherwise.
            pointwise: small(7)? == 0,
        };
        Ok(ProblemParams {
            seed: u.arbitrary()?,
            ..params
        }
        .build())
    }
}

impl ConvProblem {
    /// A problem with a given spec (for named regression cases and benches).
    pub fn new(
        spec: ConvSpec,
        has_bias: bool,
        activation: Activation,
        values: Values,
        seed: u64,
    ) -> ConvProblem {
        ConvProblem {
            spec,
            has_bias,
            activation,
            values,
            seed,
        }
    }

    /// The validated shape (generated problems are always valid).
    pub fn shape(&self) -> ConvShape {
        self.spec
            .shape()
            .expect("ConvProblem holds a valid spec by construction")
    }

    fn generate<T: Element>(&self, stream: u64, len: usize, integer_range: i64) -> Vec<T> {
        let mut seed = [0u8; 16];
        seed[..8].copy_from_slice(&self.seed.to_le_bytes());
        seed[8..].copy_from_slice(&stream.to_le_bytes());
        let mut rng = TestRng::from_seed(RngAlgorithm::XorShift, &seed);
        (0..len)
            .map(|_| {
                let bits = rng.next_u64();
                let value = match self.values {
                    // 53 random bits scaled to [-1, 1).
                    Values::Real => (bits >> 11) as f64 / (1u64 << 52) as f64 - 1.0,
                    Values::Integer => {
                        (bits % (2 * integer_range as u64 + 1)) as i64 as f64 - integer_range as f64
                    }
                };
                T::from_f64_rounded(value)
            })
            .collect()
    }

    /// The input tensor in the spec's layout.
    pub fn input<T: Element>(&self) -> Vec<T> {
        self.generate(1, self.shape().input_len(), 4)
    }

    /// The OIHW weights.
    pub fn weights<T: Element>(&self) -> Vec<T> {
        self.generate(2, self.shape().weight_len(), 3)
    }

    /// A gradient at the output, as a backward pass receives it (values as the input's).
    pub fn grad_output<T: Element>(&self) -> Vec<T> {
        self.generate(4, self.shape().output_len(), 4)
    }

    /// The bias, if the problem has one.
    pub fn bias<T: Element>(&self) -> Option<Vec<T>> {
        self.has_bias
            .then(|| self.generate(3, self.shape().bias_len(), 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn generated_problems_are_valid_within_budget_and_cover_the_ranges() {
        let mut runner = TestRunner::deterministic();
        let strategy = conv_problem();
        let (mut depthwise, mut nhwc, mut one_by_one, mut wide) = (0, 0, 0, 0);
        for _ in 0..2000 {
            let problem = strategy.new_tree(&mut runner).unwrap().current();
            let shape = problem.spec.shape().expect("valid");
            assert!(shape.flops() / 2 <= MAC_BUDGET);
            assert!(shape.in_channels() <= 40 && shape.out_channels() <= 80);
            depthwise += usize::from(shape.groups() == shape.in_channels() && shape.groups() > 1);
            nhwc += usize::from(shape.layout() == Layout::Nhwc);
            one_by_one += usize::from(shape.output_hw() == [1, 1]);
            wide += usize::from(shape.output_hw()[1] > 16);
        }
        assert!(depthwise > 100 && nhwc > 500 && one_by_one > 5 && wide > 50);
    }

    #[test]
    fn integer_data_stays_in_range_and_is_deterministic() {
        let problem = ConvProblem::new(
            ConvSpec::new(2, 3, 4, [5, 5], [3, 3]),
            true,
            Activation::None,
            Values::Integer,
            7,
        );
        let input = problem.input::<f32>();
        assert!(input.iter().all(|v| v.fract() == 0.0 && v.abs() <= 4.0));
        assert_eq!(input, problem.input::<f32>());
        assert!(
            problem
                .bias::<f64>()
                .unwrap()
                .iter()
                .all(|v| v.abs() <= 8.0)
        );
    }
}
