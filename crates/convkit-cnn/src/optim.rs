//! Optimizers: SGD with momentum and Adam.

use crate::CnnError;
use crate::layer::Parameter;

/// Updates parameters from their gradients.
pub trait Optimizer: std::fmt::Debug {
    /// One step over the network's parameters, always passed in the same order.
    fn step(&mut self, parameters: &mut [&mut Parameter]) -> Result<(), CnnError>;

    /// The learning rate of the next step.
    fn learning_rate(&self) -> f32;

    /// Sets the learning rate (for schedules).
    fn set_learning_rate(&mut self, rate: f32);
}

/// Per-parameter state, created on the first step and checked on every later one.
fn state_for(state: &mut Vec<Vec<f32>>, parameters: &[&mut Parameter]) -> Result<(), CnnError> {
    if state.is_empty() {
        *state = parameters
            .iter()
            .map(|p| vec![0.0; p.values().len()])
            .collect();
    }
    let lengths_match = state.len() == parameters.len()
        && state
            .iter()
            .zip(parameters)
            .all(|(s, p)| s.len() == p.values().len());
    if lengths_match {
        Ok(())
    } else {
        Err(CnnError::Config(
            "the optimizer was stepped with a different set of parameters".into(),
        ))
    }
}

/// Stochastic gradient descent with momentum and L2 weight decay:
/// `v ← μ·v + (g + λ·w)`, `w ← w − η·v`.
#[derive(Clone, Debug)]
pub struct Sgd {
    rate: f32,
    momentum: f32,
    weight_decay: f32,
    velocity: Vec<Vec<f32>>,
}

impl Sgd {
    /// SGD with learning rate `rate`, momentum `momentum` (0 for plain SGD) and no decay.
    pub fn new(rate: f32, momentum: f32) -> Sgd {
        Sgd {
            rate,
            momentum,
            weight_decay: 0.0,
            velocity: Vec::new(),
        }
    }

    /// Adds L2 weight decay `λ`.
    pub fn weight_decay(mut self, lambda: f32) -> Sgd {
        self.weight_decay = lambda;
        self
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, parameters: &mut [&mut Parameter]) -> Result<(), CnnError> {
        state_for(&mut self.velocity, parameters)?;
        for (parameter, velocity) in parameters.iter_mut().zip(&mut self.velocity) {
            let (values, grad) = parameter.values_and_grad();
            for ((w, &g), v) in values.iter_mut().zip(grad).zip(velocity.iter_mut()) {
                *v = self.momentum * *v + g + self.weight_decay * *w;
                *w -= self.rate * *v;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f32 {
        self.rate
    }

    fn set_learning_rate(&mut self, rate: f32) {
        self.rate = rate;
    }
}

/// Adam (Kingma & Ba, 2015) with bias-corrected moments:
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `w ← w − η·(m̂ / (√v̂ + ε) + λ·w)`, the last
/// term being AdamW's decoupled weight decay (Loshchilov & Hutter, 2019; `λ = 0` by default).
#[derive(Clone, Debug)]
pub struct Adam {
    rate: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    steps: i32,
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
}

impl Adam {
    /// Adam with learning rate `rate` and the usual β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    pub fn new(rate: f32) -> Adam {
        Adam {
            rate,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            steps: 0,
            first: Vec::new(),
            second: Vec::new(),
        }
    }

    /// Adds decoupled weight decay `λ` (AdamW).
    pub fn weight_decay(mut self, lambda: f32) -> Adam {
        self.weight_decay = lambda;
        self
    }
}

impl Optimizer for Adam {
    fn step(&mut self, parameters: &mut [&mut Parameter]) -> Result<(), CnnError> {
        state_for(&mut self.first, parameters)?;
        state_for(&mut self.second, parameters)?;
        self.steps = self.steps.saturating_add(1);
        let correction1 = 1.0 - self.beta1.powi(self.steps);
        let correction2 = 1.0 - self.beta2.powi(self.steps);
        let step_size = self.rate / correction1;
        for ((parameter, first), second) in parameters
            .iter_mut()
            .zip(&mut self.first)
            .zip(&mut self.second)
        {
            let (values, grad) = parameter.values_and_grad();
            for (((w, &g), m), v) in values
                .iter_mut()
                .zip(grad)
                .zip(first.iter_mut())
                .zip(second.iter_mut())
            {
                *m = self.beta1 * *m + (1.0 - self.beta1) * g;
                *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
                *w -= step_size * *m / ((*v / correction2).sqrt() + self.epsilon)
                    + self.rate * self.weight_decay * *w;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f32 {
        self.rate
    }

    fn set_learning_rate(&mut self, rate: f32) {
        self.rate = rate;
    }
}
