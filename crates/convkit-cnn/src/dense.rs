//! `Dense`: a fully connected layer on convkit's packed SGEMM.

use crate::layer::{Layer, LayerSpec, Mode, Parameter, check_output_grad, shape_error};
use crate::{CnnError, Tensor};
use convkit_gemm::{Epilogue, KernelShape, Sgemm, StridedMatrix};
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// `y = x·Wᵀ + b` for a batch `x` of `[N, inputs, 1, 1]`, `W` of `[outputs, inputs]`.
///
/// All three products run on [`Sgemm::gemm_strided`], reading the transposed operands in
/// place: forward `x·Wᵀ` (bias in the epilogue), input gradient `dy·W`, weight gradient
/// `dyᵀ·x`.
#[derive(Debug)]
pub struct Dense {
    isa: convkit::Isa,
    weight: Parameter,
    bias: Parameter,
    saved_input: Option<Tensor>,
    scratch: Vec<f32>,
}

impl Dense {
    /// A layer with He-normal weights (`σ = √(2 / inputs)`) and zero bias, on the widest
    /// SGEMM path this CPU runs (or the one `CONVKIT_ISA` names).
    pub fn new([inputs, outputs]: [usize; 2], rng: &mut impl Rng) -> Result<Dense, CnnError> {
        if inputs == 0 || outputs == 0 {
            return Err(CnnError::Config(format!(
                "dense sizes must be positive: {inputs} -> {outputs}"
            )));
        }
        let isa = convkit_simd::resolve(KernelShape::ISAS, convkit_simd::select(None)?);
        let normal = Normal::new(0.0, (2.0 / inputs as f64).sqrt() as f32)
            .map_err(|e| CnnError::Config(e.to_string()))?;
        let weights = (0..inputs * outputs).map(|_| normal.sample(rng)).collect();
        Ok(Dense {
            isa,
            weight: Parameter::new("weight", vec![outputs, inputs], weights),
            bias: Parameter::new("bias", vec![outputs], vec![0.0; outputs]),
            saved_input: None,
            scratch: Vec::new(),
        })
    }

    fn sizes(&self) -> [usize; 2] {
        [self.weight.shape()[1], self.weight.shape()[0]]
    }
}

/// `C (m×n) = A·B` with A and B given as (outer, depth) strided views, on `isa`, growing
/// `scratch` to the current pool's need.
fn product(
    isa: convkit::Isa,
    scratch: &mut Vec<f32>,
    dims: [usize; 3],
    a: StridedMatrix<'_>,
    b: StridedMatrix<'_>,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>, CnnError> {
    let sgemm = Sgemm::for_product(isa, dims);
    let needed = sgemm.scratch_len(rayon::current_num_threads());
    if scratch.len() < needed {
        scratch.resize(needed, 0.0);
    }
    let [m, n, _] = dims;
    let mut c = vec![0.0; m * n];
    let epilogue = Epilogue {
        col_bias: bias,
        ..Epilogue::default()
    };
    sgemm.gemm_strided(dims, a, b, &mut c, n, &epilogue, scratch)?;
    Ok(c)
}

impl Layer for Dense {
    fn spec(&self) -> LayerSpec {
        let [inputs, outputs] = self.sizes();
        LayerSpec::Dense { inputs, outputs }
    }

    fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4], CnnError> {
        let [inputs, outputs] = self.sizes();
        if input[1..] != [inputs, 1, 1] {
            return Err(shape_error(self, format!("[N, {inputs}, 1, 1]"), input));
        }
        Ok([input[0], outputs, 1, 1])
    }

    fn forward(&mut self, input: Tensor, mode: Mode) -> Result<Tensor, CnnError> {
        let shape = self.output_shape(input.shape())?;
        let [inputs, outputs] = self.sizes();
        let output = product(
            self.isa,
            &mut self.scratch,
            [input.batch(), outputs, inputs],
            StridedMatrix::new(input.data(), inputs, 1),
            StridedMatrix::new(self.weight.values(), inputs, 1),
            Some(self.bias.values()),
        )?;
        self.saved_input = (mode == Mode::Train).then_some(input);
        Tensor::new(shape, output)
    }

    fn backward(
        &mut self,
        grad_output: Tensor,
        input_grad: bool,
    ) -> Result<Option<Tensor>, CnnError> {
        let input = self.saved_input.take().ok_or_else(|| CnnError::NoForward {
            layer: format!("{:?}", self.spec()),
        })?;
        check_output_grad(self, input.shape(), &grad_output)?;
        let [inputs, outputs] = self.sizes();
        let batch = input.batch();
        let dy = grad_output.data();
        let mut bias_grad = vec![0.0f32; outputs];
        for row in dy.chunks_exact(outputs) {
            for (sum, &g) in bias_grad.iter_mut().zip(row) {
                *sum += g;
            }
        }
        self.bias.set_grad(&bias_grad);
        let weight_grad = product(
            self.isa,
            &mut self.scratch,
            [outputs, inputs, batch],
            StridedMatrix::new(dy, 1, outputs),
            StridedMatrix::new(input.data(), 1, inputs),
            None,
        )?;
        self.weight.set_grad(&weight_grad);
        if !input_grad {
            return Ok(None);
        }
        let grad = product(
            self.isa,
            &mut self.scratch,
            [batch, inputs, outputs],
            StridedMatrix::new(dy, outputs, 1),
            StridedMatrix::new(self.weight.values(), 1, inputs),
            None,
        )?;
        Ok(Some(Tensor::new(input.shape(), grad)?))
    }

    fn parameters(&self) -> Vec<&Parameter> {
        vec![&self.weight, &self.bias]
    }

    fn parameters_mut(&mut self) -> Vec<&mut Parameter> {
        vec![&mut self.weight, &mut self.bias]
    }
}
