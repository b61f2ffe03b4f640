//! The prepared plan: weights packed once for the chosen [`Strategy`], the padded copies made
//! per wave or band at run time, and the waves run as GEMM jobs (`jobs.rs`).

use crate::lowering::{PaddedPlanes, Subsampling, Window};
use crate::strategy::{Pitched, Strategy};
use convkit_core::{Activation, Algorithm, ConvPlan, ConvShape, Isa, Layout, PlanRequest};
use convkit_gemm::{Columns, GemmOutput, PackedPanels, Packing, Sgemm, StridedMatrix};
use convkit_simd::{F32Storage, SharedOutput};
use rayon::prelude::*;
use std::ops::Range;

/// Padded elements below which the copies are made on the calling thread.
const PARALLEL_PADDING_MIN: usize = 1 << 15;

/// Elements past the padded copies that a stepped B read may touch: the last job's whole
/// vectors past its last column (computed, never stored).
const STEPPED_SLACK: usize = 16;

/// A prepared im2col+GEMM convolution.
pub(crate) struct Im2colPlan {
    pub shape: ConvShape,
    pub sgemm: Sgemm,
    /// Per group: the packed weights (A for NCHW, B for NHWC and pixel rows).
    pub weights: Vec<PackedPanels>,
    pub bias: Option<Vec<f32>>,
    pub activation: Activation,
    pub window: Window,
    pub strategy: Strategy,
    pub workers: usize,
}

impl Im2colPlan {
    /// How the GEMM's C maps to the output (see [`Strategy::c_columns`]).
    pub(crate) fn c_columns(&self) -> Columns {
        self.strategy.c_columns(&self.shape)
    }

    /// The plan of `request`, for input and output stored in half precision when `converts`
    /// (the input is then packed where f32 would be read in place, and C is staged where
    /// the microkernels cannot round it from their registers).
    pub(crate) fn new(request: &PlanRequest<'_, f32>, converts: bool) -> Im2colPlan {
        let shape = *request.shape();
        let workers = rayon::current_num_threads();
        let (strategy, sgemm) = Strategy::choose(&shape, request.isa(), workers);
        let (kg, cg, depth) = (
            shape.out_channels_per_group(),
            shape.in_channels_per_group(),
            shape.reduction_len(),
        );
        let kernel = sgemm.kernel();
        let kc = sgemm.blocking().kc;
        let [kh, kw] = shape.kernel_hw();
        let pixel_rows = matches!(strategy, Strategy::PixelRows { .. });
        // The weights are A (panels of MR output channels) when the output channels are the
        // rows of C, B (panels of NR) when they are its columns.
        let weights = (0..shape.groups())
            .map(|g| {
                let oihw = &request.weights()[g * kg * depth..(g + 1) * kg * depth];
                match shape.layout() {
                    Layout::Nchw => PackedPanels::new(
                        &StridedMatrix::new(oihw, depth, 1),
                        kg,
                        depth,
                        if pixel_rows { kernel.nr } else { kernel.mr },
                        kc,
                    ),
                    Layout::Nhwc => {
                        // Depth order (ky, kx, c) to match the NHWC lowering.
                        let mut reordered = Vec::with_capacity(oihw.len());
                        for m in 0..kg {
                            for tap in 0..kh * kw {
                                reordered
                                    .extend((0..cg).map(|c| oihw[(m * cg + c) * kh * kw + tap]));
                            }
                        }
                        PackedPanels::new(
                            &StridedMatrix::new(&reordered, depth, 1),
                            kg,
                            depth,
                            kernel.nr,
                            kc,
                        )
                    }
                }
            })
            .collect();
        let mut plan = Im2colPlan {
            shape,
            sgemm,
            weights,
            bias: request.bias().map(<[f32]>::to_vec),
            activation: request.activation(),
            window: Window::new(&shape),
            strategy,
            workers,
        };
        // Scratch blocks only for what is packed at run time: NCHW's weights are prepacked
        // and its padded copies read in place (where the step tables fit), else its B is
        // the input (packed: pointwise, per-row lowering); NHWC's B is the prepacked
        // weights, its A the input's rows in place (pointwise f32), widened as rows (pointwise
        // half) or the lowering (packed). A half-precision C is staged unless the
        // microkernels round it from their registers.
        let staged_c = converts && plan.sgemm.stages_half_c(plan.c_columns(), depth);
        let pointwise = matches!(plan.strategy, Strategy::Pointwise);
        plan.sgemm = plan.sgemm.with_packing(match shape.layout() {
            Layout::Nchw => Packing {
                a: false,
                b: !plan.strategy.reads_in_place(),
                c: staged_c,
            },
            Layout::Nhwc => Packing {
                a: !pointwise || converts,
                b: false,
                c: staged_c,
            },
        });
        plan
    }

    /// f32 elements of one image's subsampled copy ([`Strategy::Subsampled`]).
    fn subsampled_len(&self) -> usize {
        let [oh, ow] = self.shape.output_hw();
        self.shape.in_channels() * oh * ow
    }

    /// Copies `image`'s subsampled planes into `copy`, channels split across the pool's
    /// workers when the copy is large enough to pay for it.
    fn subsample<T: F32Storage>(&self, image: &[T], copy: &mut [f32]) {
        let shape = &self.shape;
        let [h, w] = shape.input_hw();
        let [oh, ow] = shape.output_hw();
        let geometry = Subsampling {
            input_hw: [h, w],
            output_hw: [oh, ow],
            stride: shape.stride(),
        };
        let isa = self.sgemm.kernel().isa;
        if copy.len() < PARALLEL_PADDING_MIN {
            geometry.copy(isa, image, copy);
        } else {
            let channels = shape.in_channels().div_ceil(self.workers.max(1));
            image
                .par_chunks(channels * h * w)
                .zip(copy.par_chunks_mut(channels * oh * ow))
                .for_each(|(planes, copied)| geometry.copy(isa, planes, copied));
        }
    }

    /// Writes the zero-padded copy of output rows `rows` (with their halo) of every (image,
    /// group) of `images` into `padded`, one after another, in parallel over phase planes
    /// when there is enough of them to share (the stem's 3 channels are 12 of them: an even
    /// share for 2 or 3 workers).
    fn pad<T: F32Storage>(
        &self,
        input: &[T],
        pitched: Pitched,
        images: Range<usize>,
        rows: Range<usize>,
        padded: &mut [f32],
        parallel: bool,
    ) {
        let shape = &self.shape;
        let [h, w] = shape.input_hw();
        let image_len = shape.in_channels() * h * w;
        let input = &input[images.start * image_len..images.end * image_len];
        let geometry = PaddedPlanes {
            input_hw: [h, w],
            top_left: [shape.padding().top, shape.padding().left],
            pitch: pitched.pitch,
            stride: pitched.stride,
            first_line: rows.start * pitched.step[0],
            plane_len: pitched.plane_len(rows.len()),
        };
        let phases = pitched.stride[0] * pitched.stride[1];
        let channels = images.len() * shape.in_channels();
        let isa = self.sgemm.kernel().isa;
        let pad_phase = |(index, phase_plane): (usize, &mut [f32])| {
            let (channel, phase) = (index / phases, index % phases);
            let plane = &input[channel * h * w..(channel + 1) * h * w];
            geometry.pad_phase(isa, plane, phase, phase_plane);
        };
        let padded = &mut padded[..channels * phases * geometry.plane_len];
        if !parallel || padded.len() < PARALLEL_PADDING_MIN {
            padded
                .chunks_exact_mut(geometry.plane_len)
                .enumerate()
                .for_each(pad_phase);
        } else {
            padded
                .par_chunks_exact_mut(geometry.plane_len)
                .enumerate()
                .for_each(pad_phase);
        }
    }
}

impl<T: GemmOutput> ConvPlan<T> for Im2colPlan {
    fn shape(&self) -> &ConvShape {
        &self.shape
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::Im2colGemm
    }

    fn isa(&self) -> Isa {
        self.sgemm.kernel().isa
    }

    fn scratch_len(&self) -> usize {
        if matches!(self.strategy, Strategy::Subsampled) {
            return self.sgemm.scratch_len(self.workers) + self.subsampled_len();
        }
        let padded = self.strategy.pitched().map_or(0, |pitched| {
            let copy = pitched.wave
                * self.shape.groups()
                * pitched.group_len(self.shape.in_channels_per_group(), pitched.band_rows)
                + STEPPED_SLACK;
            match pitched.worker_bands {
                true => copy * self.shape.output_hw()[0].div_ceil(pitched.band_rows),
                false => copy,
            }
        });
        self.sgemm.scratch_len(self.workers) + padded
    }

    fn plan_bytes(&self) -> usize {
        self.weights.iter().map(PackedPanels::bytes).sum::<usize>()
            + self
                .bias
                .as_ref()
                .map_or(0, |b| b.len() * std::mem::size_of::<f32>())
    }

    fn execute(&self, input: &[T], output: &mut [T], scratch: &mut [f32]) {
        let shape = &self.shape;
        let images = match shape.layout() {
            Layout::Nchw => shape.batch(),
            Layout::Nhwc => 1,
        };
        let (gemm_scratch, padded) = scratch.split_at_mut(self.sgemm.scratch_len(self.workers));
        let oh = shape.output_hw()[0];
        let output = SharedOutput::new(output.as_mut_ptr());
        if matches!(self.strategy, Strategy::Subsampled) {
            let image_len = shape.in_channels() * shape.input_hw()[0] * shape.input_hw()[1];
            let copy = &mut padded[..self.subsampled_len()];
            for n in 0..images {
                self.subsample(&input[n * image_len..(n + 1) * image_len], copy);
                self.run_wave(input, &*copy, (n..n + 1, 0..oh), output, gemm_scratch);
            }
            return;
        }
        let Some(pitched) = self.strategy.pitched() else {
            self.run_wave(input, &[], (0..images, 0..oh), output, gemm_scratch);
            return;
        };
        if pitched.worker_bands {
            let band_len = self.shape.groups()
                * pitched.group_len(self.shape.in_channels_per_group(), pitched.band_rows)
                + STEPPED_SLACK;
            gemm_scratch
                .par_chunks_mut(self.sgemm.scratch_per_worker())
                .zip(padded.par_chunks_mut(band_len))
                .enumerate()
                .for_each(|(band, (gemm_scratch, padded))| {
                    let rows = band * pitched.band_rows..((band + 1) * pitched.band_rows).min(oh);
                    self.pad(input, pitched, 0..1, rows.clone(), padded, false);
                    self.run_wave(input, &*padded, (0..1, rows), output, gemm_scratch);
                });
            return;
        }
        for first in (0..images).step_by(pitched.wave) {
            let wave_images = first..(first + pitched.wave).min(images);
            for band in (0..oh).step_by(pitched.band_rows) {
                let rows = band..(band + pitched.band_rows).min(oh);
                self.pad(
                    input,
                    pitched,
                    wave_images.clone(),
                    rows.clone(),
                    padded,
                    true,
                );
                self.run_wave(
                    input,
                    &*padded,
                    (wave_images.clone(), rows),
                    output,
                    gemm_scratch,
                );
            }
        }
    }
}
