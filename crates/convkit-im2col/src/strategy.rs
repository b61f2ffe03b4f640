//! The lowering strategies: how a plan turns the input into the GEMM's operand, chosen once
//! at plan time ([`Strategy::choose`]), and what each implies for the GEMM's shape, its C
//! layout and the scratch it packs into.

use crate::cost::{l1_set_crowding, transposed_store_steps};
use convkit_core::{ConvShape, Isa, Layout, Padding};
use convkit_gemm::{Columns, KernelShape, Sgemm};

/// A 1x1 stride-1 layer without padding: a GEMM on the input as it is.
pub(crate) fn is_pointwise(shape: &ConvShape) -> bool {
    let padding = shape.padding();
    shape.kernel_hw() == [1, 1]
        && shape.stride() == [1, 1]
        && padding.top + padding.bottom + padding.left + padding.right == 0
}

/// Scratch (f32 elements) the zero-padded copies may take for the pitched lowering, per
/// worker (1 MiB): a batch is convolved in waves of as many images as fit, a larger image in
/// bands of output rows; only an image too wide for a band of [`MIN_BAND_ROWS`] uses the
/// per-row lowering. Per worker, so that two workers convolve twice the images between two
/// synchronizations (`docs/tuning.md`, PADDED_BUDGET).
const PADDED_BUDGET: usize = 1 << 18;

/// Depth block of pitched GEMMs: every tile is parked and stored once per depth block, so
/// the whole reduction of a 3x3 layer up to 266 channels goes in one (measured: 2304 beats
/// 576 on 256-channel layers).
const PITCHED_MAX_DEPTH_BLOCK: usize = 2400;

/// Largest stride folded into phase planes: beyond it most phases would be copied and never
/// read (a stride-s layer reads only the phases its taps land on).
const MAX_PHASE_STRIDE: usize = 2;

/// Smallest band of output rows worth padding for (below it the halo rows dominate).
const MIN_BAND_ROWS: usize = 4;

/// Smallest worker's share of an image's output rows for [`Pitched::worker_bands`].
const MIN_WORKER_BAND_ROWS: usize = 16;

/// How the pitched lowering lays out its padded copies and walks the batch.
///
/// For the columns of C, a stride `s` is folded into *phase planes*: phase `(pr, pc)` of a
/// channel holds padded pixels `(s_h·i + pr, s_w·j + pc)` at `(i, j)`, so tap `(ky, kx)` of
/// output `(oy, ox)` is phase `(ky·dh mod s_h, kx·dw mod s_w)` at `(oy + ky·dh / s_h, ox +
/// kx·dw / s_w)`: a fixed offset on a grid of pitch `⌈Wp / s_w⌉`, as for stride 1 (one
/// phase). Pixel rows, which read each pixel at its own offset, need no phases: their copy
/// is the padded image itself (pitch `Wp`), output `(oy, ox)` at `(s_h·oy, s_w·ox)` (`step`),
/// copied row by row at the cost of a plain copy (a stride-2 layer reads each input row once
/// instead of once per column phase).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pitched {
    /// Columns per line of the grid: `⌈(W + left + right) / s_w⌉` with phases, else
    /// `W + left + right`.
    pub pitch: usize,
    /// Lines read beyond the first line of a band's last output row: `⌊(KH − 1)·dh / s_h⌋`
    /// with phases, else `(KH − 1)·dh`.
    pub halo: usize,
    /// `[s_h, s_w]` folded into phases (phases per channel: `s_h·s_w`), or `[1, 1]`.
    pub stride: [usize; 2],
    /// Lines and columns between output pixels on the grid: `[1, 1]` with phases, else
    /// `[s_h, s_w]`.
    pub step: [usize; 2],
    /// Output rows convolved at a time: `OH` (whole images) when an image fits the budget,
    /// else fewer (`≤ OH − 1`).
    pub band_rows: usize,
    /// Images convolved at a time (1 when banded).
    pub wave: usize,
    /// The bands are the workers' shares of one image, each padded and convolved by one
    /// worker on its own (see [`Pitched::plan`]), rather than convolved one after another
    /// by all of them.
    pub worker_bands: bool,
}

impl Pitched {
    /// The layout for `shape`, with the stride folded into phases or not (`phased`), within
    /// [`PADDED_BUDGET`] per worker of `workers`, if a band of [`MIN_BAND_ROWS`] fits: whole
    /// images (a wave of them), one image in worker bands, or bands in turn.
    pub(crate) fn plan(shape: &ConvShape, workers: usize, phased: bool) -> Option<Pitched> {
        let budget = PADDED_BUDGET * workers.max(1);
        let padding = shape.padding();
        let (stride, step) = match phased {
            true => (shape.stride(), [1, 1]),
            false => ([1, 1], shape.stride()),
        };
        if stride.iter().any(|&s| s > MAX_PHASE_STRIDE) {
            return None;
        }
        let pitch = (shape.input_hw()[1] + padding.left + padding.right).div_ceil(stride[1]);
        let halo = (shape.kernel_hw()[0] - 1) * shape.dilation()[0] / stride[0];
        // Checked: a valid spec can still have a huge padded width.
        let row_len = shape
            .in_channels()
            .checked_mul(stride[0] * stride[1])?
            .checked_mul(pitch)?;
        let oh = shape.output_hw()[0];
        let layout = |band_rows, wave| Pitched {
            pitch,
            halo,
            stride,
            step,
            band_rows,
            wave,
            worker_bands: false,
        };
        let image_len = row_len.checked_mul((oh - 1).checked_mul(step[0])? + 1 + halo)?;
        if image_len <= budget {
            // One image among several workers: each pads and convolves its own share of the
            // output rows, so that the copy it reads is the one it wrote (in its L2) and a
            // run is one fork-join instead of two (`docs/tuning.md`, Pitched::plan, worker
            // bands).
            let band_rows = oh.div_ceil(workers.max(1));
            if workers > 1 && shape.batch() == 1 && band_rows >= MIN_WORKER_BAND_ROWS {
                return Some(Pitched {
                    worker_bands: true,
                    ..layout(band_rows, 1)
                });
            }
            return Some(layout(oh, (budget / image_len).clamp(1, shape.batch())));
        }
        // Lines (R − 1)·step + 1 + halo within the budget.
        let band_rows = (budget / row_len).saturating_sub(1 + halo) / step[0] + 1;
        (band_rows >= MIN_BAND_ROWS).then_some(layout(band_rows, 1))
    }

    /// Per tap `(ky, kx)` (row-major): the phase plane it reads, `(ky·dh mod s_h)·s_w + kx·dw
    /// mod s_w`, and its offset within the plane, `⌊ky·dh / s_h⌋·P + ⌊kx·dw / s_w⌋`.
    pub(crate) fn taps(&self, shape: &ConvShape) -> Vec<(usize, usize)> {
        let [kh, kw] = shape.kernel_hw();
        let [dh, dw] = shape.dilation();
        let [sh, sw] = self.stride;
        (0..kh * kw)
            .map(|tap| {
                let (row_tap, column_tap) = (tap / kw * dh, tap % kw * dw);
                let phase = (row_tap % sh) * sw + column_tap % sw;
                (phase, row_tap / sh * self.pitch + column_tap / sw)
            })
            .collect()
    }

    /// Per depth index `(c, ky, kx)`: where its row of B starts in a job's padded copy of
    /// `rows` output rows (the stepped read of `PitchedLowering`), or `None` past `u32`.
    pub(crate) fn steps(
        &self,
        taps: &[(usize, usize)],
        channels: usize,
        rows: usize,
    ) -> Option<Vec<u32>> {
        let (phases, plane_len) = (self.stride[0] * self.stride[1], self.plane_len(rows));
        (0..channels)
            .flat_map(|c| {
                taps.iter()
                    .map(move |&(phase, offset)| (c * phases + phase) * plane_len + offset)
            })
            .map(|step| u32::try_from(step).ok())
            .collect()
    }

    /// Per output pixel `(oy, ox)` of a band of `rows` output rows (row-major): its place on
    /// the grid, `step_h·oy·P + step_w·ox`, where the stepped read of its depth indices starts
    /// (the rows of A when the pixels are the rows of C); `None` past `u32`.
    pub(crate) fn pixels(&self, ow: usize, rows: usize) -> Option<Vec<u32>> {
        let [step_h, step_w] = self.step;
        (0..rows)
            .flat_map(|oy| (0..ow).map(move |ox| step_h * oy * self.pitch + step_w * ox))
            .map(|offset| u32::try_from(offset).ok())
            .collect()
    }

    /// Elements of one phase plane for a band of `rows` output rows.
    pub(crate) fn plane_len(&self, rows: usize) -> usize {
        ((rows - 1) * self.step[0] + 1 + self.halo) * self.pitch
    }

    /// Elements of the padded copy of `rows` output rows of one (image, group).
    pub(crate) fn group_len(&self, group_channels: usize, rows: usize) -> usize {
        group_channels * self.stride[0] * self.stride[1] * self.plane_len(rows)
    }
}

/// A pitched plan's step tables: for a band of `band_rows` output rows, and for the last,
/// shorter band (empty when the bands divide the image).
#[derive(Debug)]
pub(crate) struct StepTables {
    full: BandTables,
    last: BandTables,
}

/// The tables of one band height.
#[derive(Debug, Default)]
pub(crate) struct BandTables {
    /// Per depth index `(c, ky, kx)`: [`Pitched::steps`].
    pub steps: Vec<u32>,
    /// Per output pixel, for [`Strategy::PixelRows`]: [`Pitched::pixels`] (else empty).
    pub pixels: Vec<u32>,
}

impl StepTables {
    /// The tables of `pitched`'s bands in `shape` (with the pixels' offsets for pixel rows),
    /// when every band's fit `u32`.
    fn new(shape: &ConvShape, pitched: Pitched, pixel_rows: bool) -> Option<StepTables> {
        let [oh, ow] = shape.output_hw();
        let taps = pitched.taps(shape);
        let band = |rows| {
            Some(BandTables {
                steps: pitched.steps(&taps, shape.in_channels_per_group(), rows)?,
                pixels: match pixel_rows {
                    true => pitched.pixels(ow, rows)?,
                    false => Vec::new(),
                },
            })
        };
        // A last band shorter than the others has its own plane length.
        Some(StepTables {
            full: band(pitched.band_rows)?,
            last: match oh % pitched.band_rows {
                0 => BandTables::default(),
                rows => band(rows)?,
            },
        })
    }

    /// The tables of a band of `band_rows` output rows of `pitched`'s.
    pub(crate) fn for_band(&self, pitched: &Pitched, band_rows: usize) -> &BandTables {
        if band_rows == pitched.band_rows {
            &self.full
        } else {
            &self.last
        }
    }
}

/// How a plan lowers its input into the GEMM's operand.
///
/// | strategy | layout | A | B | C |
/// |---|---|---|---|---|
/// | `Pointwise` | NCHW | weights | the input planes as they are | contiguous planes |
/// | `Pointwise` | NHWC | the input pixels as they are | weights | contiguous pixels |
/// | `NhwcPacked` | NHWC | lowered pixels, packed | weights | contiguous pixels |
/// | `Subsampled` | NCHW | weights | the subsampled copy as it is | contiguous planes |
/// | `NchwPacked` | NCHW | weights | lowered image, packed | contiguous planes |
/// | `GridColumns` | NCHW | weights | padded copies on the pitched grid | pitched (or contiguous on kept lines) |
/// | `PixelRows` | NCHW | padded copy at pixel + tap offsets | weights | transposed into the planes |
#[derive(Debug)]
pub(crate) enum Strategy {
    /// A 1x1 stride-1 layer without padding: the input tensor is the operand as it is
    /// (widened as it is packed for half precision; in place for f32 where the GEMM reads
    /// it so).
    Pointwise,
    /// A strided 1x1 NCHW layer without padding: each image's subsampled pixels copied
    /// (widened) once into scratch, `OH·OW` per channel, which the GEMM then reads as a
    /// pointwise layer's input (a packed lowering would gather every short run of a row once
    /// per panel, and phase planes would copy every pixel to read one phase;
    /// `docs/tuning.md`, Strategy::Subsampled).
    Subsampled,
    /// An NHWC layer: the lowered pixels packed block by block straight from the image,
    /// depth order `(ky, kx, c)`.
    NhwcPacked,
    /// An NCHW layer with no padded copy (a padded 1x1 layer, strides over
    /// [`MAX_PHASE_STRIDE`], or an image too wide for a band of [`MIN_BAND_ROWS`]): the
    /// per-row lowering, packed panel by panel from the image.
    NchwPacked,
    /// An NCHW layer whose output pixels are the columns of C, on the pitched grid of its
    /// padded copies (made in bands of output rows within [`PADDED_BUDGET`], split into
    /// stride phases).
    GridColumns {
        pitched: Pitched,
        /// Per tap `(ky, kx)`: the phase plane it reads and its offset within it (see
        /// `PitchedLowering::taps`).
        taps: Vec<(usize, usize)>,
        read: GridRead,
    },
    /// An NCHW layer whose output pixels are the rows of C: A read in place from the
    /// (unphased) padded copy at a table of pixel offsets plus one of tap offsets, the
    /// weights as B, C stored transposed into the NCHW planes. Chosen where it computes
    /// less: the grid's dropped columns and a row of pixels rounded up to whole vectors cost
    /// more than pixel rows rounded up to the tile's MR (small images: a 7x7 image computes
    /// 64 grid columns for 49 pixels), by more than the transposed store costs
    /// ([`transposed_store_steps`]).
    PixelRows {
        pitched: Pitched,
        tables: StepTables,
    },
}

/// How [`Strategy::GridColumns`] reads its padded copies as B.
#[derive(Debug)]
pub(crate) enum GridRead {
    /// Packed into panels (a step table would not fit `u32`).
    Packed,
    /// In place, each depth index's row at its step. With `kept_lines` the GEMM's columns
    /// are the output pixels, its B vectors skipping the grid's dropped columns between two
    /// lines (each line holds whole vectors: `OW` a multiple of the vector, at least a tile
    /// wide), rather than the grid's columns with the dropped ones computed.
    InPlace {
        tables: StepTables,
        kept_lines: bool,
    },
}

impl Strategy {
    /// The strategy for `shape` on `isa` with `workers` threads, and the GEMM it runs.
    pub(crate) fn choose(shape: &ConvShape, isa: Isa, workers: usize) -> (Strategy, Sgemm) {
        let [oh, ow] = shape.output_hw();
        let (kg, depth) = (shape.out_channels_per_group(), shape.reduction_len());
        let nhwc_product = [shape.batch() * oh * ow, kg, depth];
        let phased = match (shape.layout(), is_pointwise(shape)) {
            (Layout::Nhwc, true) | (Layout::Nchw, true) => {
                let product = match shape.layout() {
                    Layout::Nchw => [kg, oh * ow, depth],
                    Layout::Nhwc => nhwc_product,
                };
                return (Strategy::Pointwise, Sgemm::for_product(isa, product));
            }
            (Layout::Nhwc, false) => {
                return (Strategy::NhwcPacked, Sgemm::for_product(isa, nhwc_product));
            }
            (Layout::Nchw, false) if shape.kernel_hw() == [1, 1] => {
                let product = [kg, oh * ow, depth];
                let strategy = if shape.padding() == Padding::ZERO {
                    Strategy::Subsampled
                } else {
                    // A padded 1x1 layer (rare): packed straight from the image, rather than
                    // phase planes of which only one phase is read.
                    Strategy::NchwPacked
                };
                return (strategy, Sgemm::for_product(isa, product));
            }
            (Layout::Nchw, false) => Pitched::plan(shape, workers, true),
        };
        let Some(phased) = phased else {
            let sgemm = Sgemm::for_product(isa, [kg, oh * ow, depth]);
            return (Strategy::NchwPacked, sgemm);
        };
        if prefers_pixel_rows(shape, isa, phased) {
            // Pixel rows read an unphased copy (a strided layer's phases would only cost a
            // slower copy).
            let pitched = match shape.stride() {
                [1, 1] => phased,
                _ => Pitched::plan(shape, workers, false).unwrap_or(phased),
            };
            if let Some(tables) = StepTables::new(shape, pitched, true) {
                let [m, n] = [pitched.band_rows * ow, kg];
                let sgemm = Sgemm::with_kernel(KernelShape::for_stepped_rows(isa, m, n))
                    .fit_depth(depth)
                    .fit_depth_within(depth, PITCHED_MAX_DEPTH_BLOCK);
                return (Strategy::PixelRows { pitched, tables }, sgemm);
            }
        }
        let grid = (phased.band_rows - 1) * phased.pitch + ow;
        let sgemm = Sgemm::for_product(isa, [kg, grid, depth])
            .fit_depth_within(depth, PITCHED_MAX_DEPTH_BLOCK);
        let read = match StepTables::new(shape, phased, false) {
            Some(tables) => GridRead::InPlace {
                tables,
                kept_lines: sgemm.kernel().reads_whole_lines(ow),
            },
            None => GridRead::Packed,
        };
        let taps = phased.taps(shape);
        (
            Strategy::GridColumns {
                pitched: phased,
                taps,
                read,
            },
            sgemm,
        )
    }

    /// The padded copies' layout, for the strategies that make them.
    pub(crate) fn pitched(&self) -> Option<Pitched> {
        match self {
            Strategy::GridColumns { pitched, .. } | Strategy::PixelRows { pitched, .. } => {
                Some(*pitched)
            }
            _ => None,
        }
    }

    /// Whether the GEMM reads the lowered operand in place at step tables (nothing of it is
    /// packed).
    pub(crate) fn reads_in_place(&self) -> bool {
        matches!(
            self,
            Strategy::PixelRows { .. }
                | Strategy::GridColumns {
                    read: GridRead::InPlace { .. },
                    ..
                }
        )
    }

    /// Whether the GEMM's columns are the output pixels on kept lines.
    pub(crate) fn kept_lines(&self) -> bool {
        matches!(
            self,
            Strategy::GridColumns {
                read: GridRead::InPlace {
                    kept_lines: true,
                    ..
                },
                ..
            }
        )
    }

    /// How the GEMM's C maps to the output of `shape`: the NCHW planes transposed (pixel
    /// rows), on the pitched grid (the grid's columns, dropped ones included), or
    /// contiguous (NHWC, 1x1, the per-row lowering, kept lines).
    pub(crate) fn c_columns(&self, shape: &ConvShape) -> Columns {
        match self {
            Strategy::PixelRows { .. } => Columns::Transposed,
            Strategy::GridColumns { pitched, .. } if !self.kept_lines() => Columns::Pitched {
                pitch: pitched.pitch,
                valid: shape.output_hw()[1],
            },
            _ => Columns::Contiguous,
        }
    }

    /// `[m, n, k]` of every GEMM job of `shape` convolving a band of `rows` output rows.
    pub(crate) fn job_shape(&self, shape: &ConvShape, rows: usize) -> [usize; 3] {
        let [oh, ow] = shape.output_hw();
        let (kg, depth) = (shape.out_channels_per_group(), shape.reduction_len());
        match (self, shape.layout()) {
            (Strategy::PixelRows { .. }, _) => [rows * ow, kg, depth],
            (Strategy::GridColumns { .. }, _) if self.kept_lines() => [kg, rows * ow, depth],
            (Strategy::GridColumns { pitched, .. }, _) => {
                [kg, (rows - 1) * pitched.pitch + ow, depth]
            }
            (_, Layout::Nchw) => [kg, oh * ow, depth],
            (_, Layout::Nhwc) => [shape.batch() * oh * ow, kg, depth],
        }
    }
}

/// Whether the pixels as rows of C compute less than the grid's columns, for a band of
/// `phased`'s either way, by more than the transposed store costs.
fn prefers_pixel_rows(shape: &ConvShape, isa: Isa, phased: Pitched) -> bool {
    let [oh, ow] = shape.output_hw();
    let (kg, depth) = (shape.out_channels_per_group(), shape.reduction_len());
    let rows = phased.band_rows;
    let [m, n] = [rows * ow, kg];
    let pixels = KernelShape::for_stepped_rows(isa, m, n);
    let pixels_cost = pixels.estimated_cost(m, n);
    let grid = (rows - 1) * phased.pitch + ow;
    let columns = KernelShape::for_product(isa, kg, grid);
    // Lines of whole vectors are read kept columns only (`kept_lines`).
    let [cm, cn] = [
        kg,
        if columns.reads_whole_lines(ow) {
            rows * ow
        } else {
            grid
        },
    ];
    let columns_cost = columns.estimated_cost(cm, cn);
    let store_steps =
        transposed_store_steps(isa) * l1_set_crowding(oh * ow, pixels.nr.min(kg)).max(1.0);
    pixels_cost * (1.0 + store_steps / depth as f64) < columns_cost
}

#[cfg(test)]
mod tests {
    use super::Pitched;
    use convkit_core::{ConvSpec, Padding};

    #[test]
    fn one_image_is_shared_among_the_workers_in_bands_of_its_output_rows() {
        let stem = ConvSpec::new(1, 3, 64, [224, 224], [7, 7])
            .stride([2, 2])
            .padding(Padding::symmetric([3, 3]))
            .shape()
            .unwrap();
        let one = Pitched::plan(&stem, 1, true).unwrap();
        assert!(!one.worker_bands && one.band_rows == 112);
        let two = Pitched::plan(&stem, 2, true).unwrap();
        assert!(two.worker_bands && two.band_rows == 56 && two.wave == 1);
        let batch = ConvSpec::new(2, 3, 64, [224, 224], [7, 7])
            .stride([2, 2])
            .padding(Padding::symmetric([3, 3]))
            .shape()
            .unwrap();
        assert!(!Pitched::plan(&batch, 2, true).unwrap().worker_bands);
    }
}
