//! The lowered (im2col) input as a GEMM panel source, packed straight from the image one
//! block at a time: the whole lowered matrix never exists.
//!
//! - NCHW, pitched ([`PitchedLowering`], strides up to 2, within a padded-copy budget): the
//!   image is first copied, zero-padded and split into stride phases, so that every panel
//!   row (one depth `(c, ky, kx)`, consecutive output columns of a pitched grid) is one
//!   unbroken run of the copy, which the GEMM reads in place at a table of run starts rather
//!   than packing it (`docs/tuning.md`, the padded copies read in place); the few grid
//!   columns whose window wraps around a row are dropped on store.
//! - NCHW, per row ([`NchwLowering`]): the lowered matrix is B, `(C/g·KH·KW) × (OH·OW)` per
//!   image and group; its outer index is the output pixel and its depth `(c, ky, kx)`, the
//!   OIHW weight order. A panel row is cut into runs of input rows: SIMD copies at stride 1,
//!   even-lane gathers at stride 2, scalar otherwise, zero where it falls in the padding.
//! - NHWC: the lowered matrix is A, `(N·OH·OW) × (KH·KW·C/g)`; its depth order is
//!   `(ky, kx, c)` (the weights are re-laid to match at plan time), so each tap of each
//!   pixel is a contiguous run of channels.

use convkit_core::{ConvShape, Isa};
use convkit_gemm::{PanelSource, SteppedRows, panel_groups};
use convkit_simd::transpose::interleave8;
use convkit_simd::{F32Storage, Simd, SimdKernel, prefetch_l1};
use std::marker::PhantomData;
use std::ops::Range;

/// Depth steps ahead of the one being widened whose runs [`widen_steps`] asks for
/// (`docs/tuning.md`, WIDEN_PREFETCH_STEPS).
const WIDEN_PREFETCH_STEPS: usize = 4;

/// Bytes of a cache line.
const LINE_BYTES: usize = 64;

/// Widest panel a lowering fills (wider than any microkernel's MR or NR).
const MAX_WIDTH: usize = 64;

/// Geometry shared by both lowerings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    input_hw: [usize; 2],
    output_hw: [usize; 2],
    kernel_hw: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pad_top: usize,
    pad_left: usize,
}

impl Window {
    pub(crate) fn new(shape: &ConvShape) -> Window {
        Window {
            input_hw: shape.input_hw(),
            output_hw: shape.output_hw(),
            kernel_hw: shape.kernel_hw(),
            stride: shape.stride(),
            dilation: shape.dilation(),
            pad_top: shape.padding().top,
            pad_left: shape.padding().left,
        }
    }

    /// Input row read by output row `oy` at kernel row `ky`, if inside the image.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride[0] + ky * self.dilation[0])
            .checked_sub(self.pad_top)
            .filter(|&y| y < self.input_hw[0])
    }

    /// Writes the values of input row `row` (a slice of one channel, `W` long) read by output
    /// columns `ox0..ox0 + dst.len()` at kernel column `kx`; zero in the padding.
    ///
    /// # Safety
    /// The CPU has `S::ISA`.
    #[inline(always)]
    unsafe fn copy_row_segment<S: Simd, T: F32Storage>(
        &self,
        row: &[T],
        ox0: usize,
        kx: usize,
        dst: &mut [f32],
    ) {
        let stride = self.stride[1];
        let (left, right) = (self.pad_left, self.pad_left + self.input_hw[1]);
        // Padded coordinate of the first value; outputs i read start + i·stride.
        let start = ox0 * stride + kx * self.dilation[1];
        let len = dst.len();
        if len > 0 && start >= left && start + (len - 1) * stride < right {
            // The whole run inside the row (most runs of a wide row): no padding to work out.
            // SAFETY: forwarded ISA guarantee; the run's last read is inside the row.
            unsafe { copy_strided::<S, T>(row, start - left, stride, len, dst) };
            return;
        }
        let (first, last) = if stride == 1 {
            (
                left.saturating_sub(start).min(len),
                right.saturating_sub(start).min(len),
            )
        } else {
            (
                left.saturating_sub(start).div_ceil(stride).min(len),
                right.saturating_sub(start).div_ceil(stride).min(len),
            )
        };
        dst[..first].fill(0.0);
        if first < last {
            let x0 = start + first * stride - left;
            // SAFETY: forwarded ISA guarantee; x0 + (last - first - 1)·stride < W.
            unsafe { copy_strided::<S, T>(row, x0, stride, last - first, &mut dst[first..last]) };
        }
        dst[last.max(first)..].fill(0.0);
    }
}

/// `dst[i] = row[x0 + i·stride]` (widened to f32) for `i < len`: f32 vectorized for strides
/// 1 and 2; half precision by `T::widen` (F16C where the CPU has it), at a larger stride over
/// the run's whole span in pieces, every `stride`-th value kept.
///
/// An f32 run goes in whole vectors wherever `row` holds a whole vector's reads and `dst`
/// its writes, masked only where one of them ends: a `row` or `dst` longer than the run
/// (the rest of a plane, of a copy) lets a short run go as whole vectors, which then write
/// up to `LANES − 1` places of `dst` past `len` (values of `row` past the run) that the
/// caller overwrites after: a short run costs no masked load or store, slow on AMD
/// (`docs/tuning.md`, copy_strided).
///
/// # Safety
/// The CPU has `S::ISA`. (Indices are checked: a read past `row` panics.)
#[inline(always)]
unsafe fn copy_strided<S: Simd, T: F32Storage>(
    row: &[T],
    x0: usize,
    stride: usize,
    len: usize,
    dst: &mut [f32],
) {
    match T::as_f32(row) {
        // SAFETY: forwarded ISA guarantee.
        Some(row) => unsafe { copy_strided_f32::<S>(row, x0, stride, len, dst) },
        None if stride == 1 => T::widen(&row[x0..x0 + len], &mut dst[..len]),
        None => {
            let mut span = [0.0; 4 * MAX_WIDTH];
            let per_piece = (span.len() - 1) / stride + 1;
            for (piece, values) in dst[..len].chunks_mut(per_piece).enumerate() {
                let start = x0 + piece * per_piece * stride;
                let len = (values.len() - 1) * stride + 1;
                T::widen(&row[start..start + len], &mut span[..len]);
                for (value, &wide) in values.iter_mut().zip(span.iter().step_by(stride)) {
                    *value = wide;
                }
            }
        }
    }
}

/// [`copy_strided`] of f32 values.
///
/// # Safety
/// As [`copy_strided`].
#[inline(always)]
unsafe fn copy_strided_f32<S: Simd>(
    row: &[f32],
    x0: usize,
    stride: usize,
    len: usize,
    dst: &mut [f32],
) {
    let lanes = S::LANES;
    if len == 0 {
        return;
    }
    assert!(
        x0 + (len - 1) * stride < row.len() && len <= dst.len(),
        "a strided run past its row or its destination"
    );
    if stride > 2 {
        for (i, value) in dst[..len].iter_mut().enumerate() {
            *value = row[x0 + i * stride];
        }
        return;
    }
    let mut i = 0;
    while i < len {
        let n = lanes.min(len - i);
        let from = x0 + stride * i;
        let whole_read = from + stride * lanes <= row.len();
        let whole_write = i + lanes <= dst.len();
        // SAFETY: a whole read takes stride·LANES values from `from`, checked against `row`;
        // a partial one the run's own n values (the last at x0 + (len − 1)·stride, asserted
        // inside `row`). A whole write stores LANES values from i, checked against `dst`; a
        // partial one the run's own n places (len ≤ dst.len(), asserted).
        unsafe {
            let src = row.as_ptr().add(from);
            let values = match (stride, whole_read) {
                (1, true) => S::load(src),
                (1, false) => S::load_partial(src, n),
                (_, true) => S::load_even(src),
                (_, false) => S::load_even_partial(src, n),
            };
            let out = dst.as_mut_ptr().add(i);
            if whole_write {
                S::store(out, values);
            } else {
                S::store_partial(out, values, n);
            }
        }
        i += n;
    }
}

/// The depth indices `r = (c, ky, kx)` of the NCHW lowerings from `first` on, advanced
/// without divisions.
fn taps(first: usize, [kh, kw]: [usize; 2]) -> impl Iterator<Item = (usize, usize, usize)> {
    let start = (first / (kh * kw), first / kw % kh, first % kw);
    std::iter::successors(Some(start), move |&(c, ky, kx)| {
        Some(match (ky + 1 == kh, kx + 1 == kw) {
            (_, false) => (c, ky, kx + 1),
            (false, true) => (c, ky + 1, 0),
            (true, true) => (c + 1, 0, 0),
        })
    })
}

/// The panels one [`PanelSource::pack`] call asks for: `(outer, depth, width)`.
type Panels = (Range<usize>, Range<usize>, usize);

/// A lowering whose panel packing is written once over the path (`pack_on::<S>`) and run on
/// the plan's path ([`pack_on_path`]).
trait SimdPack {
    /// [`PanelSource::pack`] on path `S`.
    ///
    /// # Safety
    /// The CPU has `S`'s path.
    unsafe fn pack_on<S: Simd>(&self, panels: Panels, dst: &mut [f32]);
}

/// [`PanelSource::pack`] of a [`SimdPack`] lowering as a [`SimdKernel`]: the lowering is
/// the entry's context, the panels its buffer.
struct PackEntry<L>(PhantomData<L>);

impl<L: SimdPack> SimdKernel for PackEntry<L> {
    type Context = L;
    type Args = Panels;
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(lowering: &L, dst: &mut [f32], panels: Panels) {
        // SAFETY: forwarded contract.
        unsafe { lowering.pack_on::<S>(panels, dst) }
    }
}

/// Packs `lowering`'s panels on `isa` (the plan's path, detected on this CPU).
fn pack_on_path<L: SimdPack>(isa: Isa, lowering: &L, panels: Panels, dst: &mut [f32]) {
    // SAFETY: the plan's path was detected on this CPU at plan time.
    unsafe { convkit_simd::call::<PackEntry<L>>(isa, lowering, dst, panels) }
}

/// NCHW lowering of one image and group: outer = output pixel, depth = `(c, ky, kx)`.
pub(crate) struct NchwLowering<'a, T> {
    /// The group's first input channel of the image: `C/g` planes of `H·W`.
    pub input: &'a [T],
    pub window: Window,
    /// The plan's path (available on this CPU).
    pub isa: Isa,
}

impl<T: F32Storage> SimdPack for NchwLowering<'_, T> {
    /// The NCHW panel packing, once for every path.
    #[inline(always)]
    unsafe fn pack_on<S: Simd>(&self, (outer, depth, width): Panels, dst: &mut [f32]) {
        let w = &self.window;
        let [kh, kw] = w.kernel_hw;
        let [in_h, in_w] = w.input_hw;
        let out_w = w.output_hw[1];
        let plane_len = in_h * in_w;
        let depth_len = depth.len();
        // The output-row runs `(oy, ox, lane, len)` one group of pixels spans (at most one per
        // lane).
        assert!(
            width <= MAX_WIDTH,
            "NCHW lowering: panel wider than {MAX_WIDTH}"
        );
        let mut runs = [(0, 0, 0, 0); MAX_WIDTH];
        for (first, valid, panel) in panel_groups(dst, outer.clone(), depth_len, width) {
            let (mut lane, mut count) = (0, 0);
            while lane < valid {
                let pixel = first + lane;
                let (oy, ox) = (pixel / out_w, pixel % out_w);
                let len = (out_w - ox).min(valid - lane);
                runs[count] = (oy, ox, lane, len);
                (lane, count) = (lane + len, count + 1);
            }
            let runs = &runs[..count];
            for (lanes, (c, ky, kx)) in panel
                .chunks_exact_mut(width)
                .zip(taps(depth.start, [kh, kw]))
            {
                let plane = &self.input[c * plane_len..(c + 1) * plane_len];
                for &(oy, ox, lane, len) in runs {
                    let dst_run = &mut lanes[lane..lane + len];
                    match w.input_row(oy, ky) {
                        // SAFETY: forwarded ISA guarantee.
                        Some(y) => unsafe {
                            w.copy_row_segment::<S, T>(
                                &plane[y * in_w..(y + 1) * in_w],
                                ox,
                                kx,
                                dst_run,
                            )
                        },
                        None => dst_run.fill(0.0),
                    }
                }
                lanes[valid..].fill(0.0);
            }
        }
    }
}

impl<T: F32Storage> PanelSource for NchwLowering<'_, T> {
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        pack_on_path(self.isa, self, (outer, depth, width), dst);
    }
}

/// NCHW lowering over zero-padded phase planes (see the plan's `Pitched`), on the pitched
/// column grid of `convkit_gemm::Columns::Pitched`: output `(oy, ox)` is column
/// `q = oy·P + ox` where `P` is the pitch, and for `r = (c, ky, kx)`,
/// `B(r, q) = phase(c, ky·dh mod s_h, kx·dw mod s_w)[q + (ky·dh / s_h)·P + kx·dw / s_w]`.
/// Every panel row is one unbroken copy; the `P − OW` columns per line whose window wraps
/// around are computed and dropped. With `lines`, the columns are the kept ones only: output
/// `(oy, ox)` is column `oy·OW + ox`, at `q = oy·P + ox` on the grid.
pub(crate) struct PitchedLowering<'a> {
    /// Per channel, `s_h·s_w` phase planes of `plane_len`. Kept columns never read past
    /// their plane: the last reads line `OH − 1 + ⌊(KH−1)·dh / s_h⌋`, column
    /// `OW − 1 + ⌊(KW−1)·dw / s_w⌋ < P`.
    pub padded: &'a [f32],
    pub plane_len: usize,
    /// Phase planes per channel, `s_h·s_w`.
    pub phases: usize,
    /// Per tap `(ky, kx)`: the phase plane it reads and its offset within the plane (the
    /// plan's table: `phase(c, ky·dh mod s_h, kx·dw mod s_w)` and `(ky·dh / s_h)·P + kx·dw /
    /// s_w` above).
    pub taps: &'a [(usize, usize)],
    /// The copies from this job's to the end of the scratch (the slack past the last job
    /// included) with the plan's step table, which the GEMM reads in place.
    pub stepped: Option<(&'a [f32], &'a [u32])>,
    pub kernel_hw: [usize; 2],
    /// `(P, OW)` when the columns are the kept ones only.
    pub lines: Option<(usize, usize)>,
}

impl PanelSource for PitchedLowering<'_> {
    /// Each panel row is a run of one phase plane, copied as it is (the GEMM reads the runs
    /// in place whenever the plan's step tables fit `u32`; this packs the others).
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        let [kh, kw] = self.kernel_hw;
        let channel_len = self.phases * self.plane_len;
        let tap_offset = |ky: usize, kx: usize| {
            let (phase, offset) = self.taps[ky * kw + kx];
            phase * self.plane_len + offset
        };
        let depth_len = depth.len();
        for (first, valid, panel) in panel_groups(dst, outer.clone(), depth_len, width) {
            for (lanes, (c, ky, kx)) in panel
                .chunks_exact_mut(width)
                .zip(taps(depth.start, [kh, kw]))
            {
                let row = c * channel_len + tap_offset(ky, kx);
                match self.lines {
                    None => lanes[..valid]
                        .copy_from_slice(&self.padded[row + first..row + first + valid]),
                    // Runs of kept columns, line by line.
                    Some((pitch, kept)) => {
                        let mut column = first;
                        while column < first + valid {
                            let run = (kept - column % kept).min(first + valid - column);
                            let at = row + column / kept * pitch + column % kept;
                            lanes[column - first..column - first + run]
                                .copy_from_slice(&self.padded[at..at + run]);
                            column += run;
                        }
                    }
                }
                lanes[valid..].fill(0.0);
            }
        }
    }

    fn stepped(&self) -> Option<(&[f32], &[u32])> {
        self.stepped
    }
}

/// NHWC lowering of the whole batch for one group: outer = `(n, oy, ox)`, depth =
/// `(ky, kx, c)`.
pub(crate) struct NhwcLowering<'a, T> {
    /// The whole input tensor.
    pub input: &'a [T],
    /// Channels of the input tensor (the pixel stride).
    pub channels: usize,
    /// First channel of the group.
    pub channel_offset: usize,
    /// Channels per group.
    pub group_channels: usize,
    pub window: Window,
}

/// The eight values when all are present.
fn all_some(values: [Option<usize>; 8]) -> Option<[usize; 8]> {
    let mut all = [0; 8];
    for (slot, value) in all.iter_mut().zip(values) {
        *slot = value?;
    }
    Some(all)
}

/// Writes `run` (zeros when `None`: the lane's tap is in the padding) down lane `lane` of
/// `rows` (`width` values per depth step).
fn copy_lane(run: Option<&[f32]>, rows: &mut [f32], width: usize, lane: usize) {
    let column = rows[lane..].iter_mut().step_by(width);
    match run {
        Some(values) => column.zip(values).for_each(|(slot, &value)| *slot = value),
        None => column.for_each(|slot| *slot = 0.0),
    }
}

/// [`copy_lane`] of any storage type: f32 as it is, half-precision values widened in runs of
/// [`MAX_WIDTH`] (F16C where the CPU has it).
fn widen_lane<T: F32Storage>(run: Option<&[T]>, rows: &mut [f32], width: usize, lane: usize) {
    let Some(values) = run else {
        return copy_lane(None, rows, width, lane);
    };
    if let Some(values) = T::as_f32(values) {
        return copy_lane(Some(values), rows, width, lane);
    }
    let mut wide = [0.0; MAX_WIDTH];
    for (chunk, rows) in values
        .chunks(MAX_WIDTH)
        .zip(rows.chunks_mut(MAX_WIDTH * width))
    {
        T::widen(chunk, &mut wide[..chunk.len()]);
        copy_lane(Some(&wide[..chunk.len()]), rows, width, lane);
    }
}

/// A matrix of half-precision values at element strides (as [`convkit_gemm::StridedMatrix`]:
/// element `(o, d)` at `data[o·outer_stride + d·depth_stride]`), packed widened to f32: the
/// GEMM operand of a 1x1 layer whose input is stored in half precision.
pub(crate) struct WidenedMatrix<'a, T> {
    pub data: &'a [T],
    pub outer_stride: usize,
    pub depth_stride: usize,
    /// The plan's path (available on this CPU).
    pub isa: Isa,
}

impl<T: F32Storage> SimdPack for WidenedMatrix<'_, T> {
    /// The panels of a [`WidenedMatrix`], once for every path.
    #[inline(always)]
    unsafe fn pack_on<S: Simd>(&self, (outer, depth, width): Panels, dst: &mut [f32]) {
        if self.outer_stride == 1 {
            // SAFETY: forwarded contract.
            return unsafe { widen_steps::<S, T>(self, outer, depth, width, dst) };
        }
        // Other strides lane by lane. (The SGEMM asks a matrix whose depth is contiguous, NHWC
        // pixels, for rows instead: `pack_rows`.)
        let depth_len = depth.len();
        for (first, valid, panel) in panel_groups(dst, outer.clone(), depth_len, width) {
            let run_at = |lane: usize| {
                let start = (first + lane) * self.outer_stride + depth.start * self.depth_stride;
                &self.data[start..]
            };
            for lane in 0..width {
                match (lane < valid).then(|| run_at(lane)) {
                    Some(values) => {
                        let column = panel[lane..].iter_mut().step_by(width);
                        for (slot, value) in column.zip(values.iter().step_by(self.depth_stride)) {
                            *slot = value.to_f32_lossy();
                        }
                    }
                    None => copy_lane(None, panel, width, lane),
                }
            }
        }
    }
}

impl<T: F32Storage> PanelSource for WidenedMatrix<'_, T> {
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        pack_on_path(self.isa, self, (outer, depth, width), dst);
    }

    fn pack_rows(&self, outer: Range<usize>, depth: Range<usize>, dst: &mut [f32]) -> bool {
        WidenedMatrix::pack_rows(self, outer, depth, dst)
    }
}

impl<T: F32Storage> WidenedMatrix<'_, T> {
    /// [`PanelSource::pack_rows`]: each outer index's contiguous run of depth values widened
    /// in one [`F32Storage::widen`] (NHWC 1x1 layers: the pixels' channels), cheaper than
    /// packing the 6-row tiles' panels (`docs/tuning.md`, WidenedMatrix::pack_rows).
    fn pack_rows(&self, outer: Range<usize>, depth: Range<usize>, dst: &mut [f32]) -> bool {
        if self.depth_stride != 1 {
            return false;
        }
        let depth_len = depth.len();
        for (o, row) in outer.zip(dst.chunks_exact_mut(depth_len)) {
            let start = o * self.outer_stride + depth.start;
            T::widen(&self.data[start..start + depth_len], row);
        }
        true
    }
}

/// Depth steps per [`interleave_few`] block (2 KiB of f32 on the stack).
const FEW_LANES_STEPS: usize = 64;

/// Lanes `lane0..lane0 + runs.len()` (fewer than eight) of a panel of `width` values per
/// depth step, from their runs (widened): [`interleave8`] into an eight-lane block on the
/// stack ([`FEW_LANES_STEPS`] steps at a time, the last run repeated in the unused lanes),
/// then each step's lanes copied from there with a length known at compile time, rather
/// than lane by lane with a widening call per 64 values and a strided write per value
/// (`docs/tuning.md`, interleave_few). A vectorized copy from parked vectors compiled to a
/// gather and masked stores.
fn interleave_few<T: F32Storage>(runs: &[&[T]], panel: &mut [f32], width: usize, lane0: usize) {
    let Some(last) = runs.last() else {
        return;
    };
    assert!(runs.len() < 8, "interleave_few: eight lanes or more");
    let len = last.len();
    let mut block = [0.0f32; 8 * FEW_LANES_STEPS];
    for start in (0..len).step_by(FEW_LANES_STEPS) {
        let steps = FEW_LANES_STEPS.min(len - start);
        let rows: [&[T]; 8] =
            std::array::from_fn(|lane| &runs.get(lane).unwrap_or(last)[start..start + steps]);
        interleave8(rows, &mut block[..8 * steps], 8, 0);
        let (block, panel) = (&block[..8 * steps], &mut panel[start * width + lane0..]);
        match runs.len() {
            1 => copy_steps::<1>(block, panel, width),
            2 => copy_steps::<2>(block, panel, width),
            3 => copy_steps::<3>(block, panel, width),
            4 => copy_steps::<4>(block, panel, width),
            5 => copy_steps::<5>(block, panel, width),
            6 => copy_steps::<6>(block, panel, width),
            _ => copy_steps::<7>(block, panel, width),
        }
    }
}

/// The first `N` lanes of each eight-lane step of `block` to `panel`, steps `width` apart.
#[inline(always)]
fn copy_steps<const N: usize>(block: &[f32], panel: &mut [f32], width: usize) {
    for (step, values) in block.chunks_exact(8).enumerate() {
        panel[step * width..step * width + N].copy_from_slice(&values[..N]);
    }
}

/// The panels of a matrix whose depth steps are contiguous runs of outer values (an NCHW 1x1
/// layer's planes): each step's run is read once, front to back, each group's part widened
/// vector by vector straight into its panel, with the runs of a later step asked for, rather
/// than group by group (a new line per step for every group) or a widening call per part
/// (`docs/tuning.md`, widen_steps).
///
/// # Safety
/// The CPU has `S::ISA`.
#[inline(always)]
unsafe fn widen_steps<S: Simd, T: F32Storage>(
    matrix: &WidenedMatrix<'_, T>,
    outer: Range<usize>,
    depth: Range<usize>,
    width: usize,
    dst: &mut [f32],
) {
    let panel_len = width * depth.len();
    let value_bytes = std::mem::size_of::<T>();
    for (p, d) in depth.clone().enumerate() {
        let row = &matrix.data[d * matrix.depth_stride..];
        // The run of the step `WIDEN_PREFETCH_STEPS` ahead (a plane further on, which the
        // hardware prefetcher does not foresee).
        let ahead = matrix
            .data
            .as_ptr()
            .wrapping_add((d + WIDEN_PREFETCH_STEPS) * matrix.depth_stride + outer.start)
            .cast::<u8>();
        for byte in (0..outer.len() * value_bytes).step_by(LINE_BYTES) {
            prefetch_l1(ahead.wrapping_add(byte).cast());
        }
        for (g, first) in outer.clone().step_by(width).enumerate() {
            let len = width.min(outer.end - first);
            let at = g * panel_len + p * width;
            let (values, lanes) = (&row[first..first + len], &mut dst[at..at + width]);
            let whole = len / S::LANES * S::LANES;
            for v in (0..whole).step_by(S::LANES) {
                // SAFETY: the CPU has `S::ISA` (contract); `v + LANES ≤ len` values are
                // readable at `values[v..]` and writable at `lanes[v..]` (width ≥ len).
                unsafe {
                    S::store(
                        lanes[v..].as_mut_ptr(),
                        T::load_lanes::<S>(values[v..].as_ptr()),
                    );
                }
            }
            for (slot, value) in lanes[whole..len].iter_mut().zip(&values[whole..]) {
                *slot = value.to_f32_lossy();
            }
            lanes[len..].fill(0.0);
        }
    }
}

impl<T: F32Storage> PanelSource for NhwcLowering<'_, T> {
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        let w = &self.window;
        let [_, kw] = w.kernel_hw;
        let [in_h, in_w] = w.input_hw;
        let [out_h, out_w] = w.output_hw;
        let cg = self.group_channels;
        let depth_len = depth.len();
        assert!(
            width <= MAX_WIDTH,
            "NHWC lowering: panel wider than {MAX_WIDTH}"
        );
        // (image, oy, ox) of output pixel `pixel`.
        let coordinates = |pixel: usize| {
            (
                pixel / (out_h * out_w),
                pixel / out_w % out_h,
                pixel % out_w,
            )
        };
        for (first, valid, panel) in panel_groups(dst, outer.clone(), depth_len, width) {
            // Each lane's pixel, worked out once per panel rather than once per tap (three
            // divisions per lane and tap were a tenth of a 3x3 layer's packing).
            let mut pixels = [(0, 0, 0); MAX_WIDTH];
            for (lane, pixel) in pixels.iter_mut().enumerate().take(valid) {
                *pixel = coordinates(first + lane);
            }
            // Depth runs one tap (ky, kx) at a time: a contiguous run of channels per lane.
            let mut r = depth.start;
            while r < depth.end {
                let (tap, c0) = (r / cg, r % cg);
                let run = (cg - c0).min(depth.end - r);
                let (ky, kx) = (tap / kw, tap % kw);
                let offset = (r - depth.start) * width;
                let rows = &mut panel[offset..offset + run * width];
                // Where each lane's run of channels starts in the input (None: padding).
                let mut sources = [None; MAX_WIDTH];
                for (source, &(n, oy, ox)) in sources.iter_mut().zip(&pixels).take(valid) {
                    let y = w.input_row(oy, ky);
                    let x = (ox * w.stride[1] + kx * w.dilation[1])
                        .checked_sub(w.pad_left)
                        .filter(|&x| x < in_w);
                    *source = y.zip(x).map(|(y, x)| {
                        ((n * in_h + y) * in_w + x) * self.channels + self.channel_offset + c0
                    });
                }
                let run_at = |base: usize| &self.input[base..base + run];
                // Eight lanes inside the image: one 8x8-transposing interleave of their runs
                // (half types widen in its loads).
                let mut lane0 = 0;
                while lane0 + 8 <= valid {
                    let eight: [Option<usize>; 8] = std::array::from_fn(|i| sources[lane0 + i]);
                    if let Some(bases) = all_some(eight) {
                        interleave8(bases.map(run_at), rows, width, lane0);
                    } else {
                        for (lane, source) in (lane0..).zip(eight) {
                            widen_lane(source.map(run_at), rows, width, lane);
                        }
                    }
                    lane0 += 8;
                }
                let mut rest: [&[T]; 7] = [&[]; 7];
                let few = (valid - lane0 < 8)
                    && rest
                        .iter_mut()
                        .zip(&sources[lane0..valid])
                        .all(|(run, source)| source.map(|base| *run = run_at(base)).is_some());
                if few {
                    interleave_few(&rest[..valid - lane0], rows, width, lane0);
                } else {
                    for (lane, source) in sources.iter().enumerate().take(valid).skip(lane0) {
                        widen_lane(source.map(run_at), rows, width, lane);
                    }
                }
                for lane in valid..width {
                    rows[lane..]
                        .iter_mut()
                        .step_by(width)
                        .for_each(|slot| *slot = 0.0);
                }
                r += run;
            }
        }
    }
}

/// NCHW, pitched, with the output pixels as the outer index (A, the rows of C): pixel `i`
/// of depth `(c, ky, kx)` is `padded[pixels[i] + steps[(c, ky, kx)]]`, the pixel's place on
/// the grid plus the row start of [`PitchedLowering`]'s stepped read. The GEMM reads it in
/// place (`stepped_rows`); packing gathers the same values.
pub(crate) struct PixelRows<'a>(pub SteppedRows<'a>);

impl PanelSource for PixelRows<'_> {
    fn pack(&self, outer: Range<usize>, depth: Range<usize>, width: usize, dst: &mut [f32]) {
        let SteppedRows {
            data,
            outer: pixels,
            steps,
        } = self.0;
        let depth_len = depth.len();
        for (first, valid, panel) in panel_groups(dst, outer.clone(), depth_len, width) {
            for (lanes, &step) in panel.chunks_exact_mut(width).zip(&steps[depth.clone()]) {
                for (value, &pixel) in lanes.iter_mut().zip(&pixels[first..first + valid]) {
                    *value = data[(pixel + step) as usize];
                }
                lanes[valid..].fill(0.0);
            }
        }
    }

    fn stepped_rows(&self) -> Option<SteppedRows<'_>> {
        Some(self.0)
    }
}

/// Where [`PitchedLowering`]'s padded copies come from: one channel of the input becomes
/// `s_h·s_w` phase planes of `plane_len` (lines of `pitch`), phase `(pr, pc)` line `i` column
/// `j` holding padded pixel `(s_h·(first_line + i) + pr, s_w·j + pc)`, zero in the padding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PaddedPlanes {
    pub input_hw: [usize; 2],
    /// Padding rows above and columns left of the image.
    pub top_left: [usize; 2],
    pub pitch: usize,
    /// `[s_h, s_w]`.
    pub stride: [usize; 2],
    /// The band's first output row (its first line of every phase plane).
    pub first_line: usize,
    pub plane_len: usize,
}

impl PaddedPlanes {
    /// Writes phase plane `phase` (of `s_h·s_w`) of one channel (`plane`, `H·W`) into
    /// `phase_plane`, with vector copies on `isa` (available on this CPU).
    pub(crate) fn pad_phase<T: F32Storage>(
        &self,
        isa: Isa,
        plane: &[T],
        phase: usize,
        phase_plane: &mut [f32],
    ) {
        // SAFETY: the plan's path is available on this CPU.
        unsafe { convkit_simd::call::<PadPhase<'_, T>>(isa, self, phase_plane, (plane, phase)) }
    }
}

/// [`PaddedPlanes::pad_phase`], once for every path: each line is zeros, a (strided) run
/// of an input row, zeros.
///
/// # Safety
/// The CPU has `S::ISA`.
#[inline(always)]
unsafe fn pad_phase_body<S: Simd, T: F32Storage>(
    geometry: &PaddedPlanes,
    plane: &[T],
    phase: usize,
    phase_plane: &mut [f32],
) {
    let PaddedPlanes {
        input_hw: [h, w],
        top_left: [top, left],
        pitch,
        stride: [sh, sw],
        first_line,
        ..
    } = *geometry;
    let (pr, pc) = (phase / sw, phase % sw);
    // Phase column j reads x = sw·j + pc − left: zeros where that is outside the row.
    let begin = left.saturating_sub(pc).div_ceil(sw).min(pitch);
    let end = (w + left)
        .saturating_sub(pc)
        .div_ceil(sw)
        .clamp(begin, pitch);
    // Lines in order, each written whole (zeros, run, zeros): a run's whole vectors may
    // spill past its end into its right padding or the next line's first places, which
    // are written after.
    let lines = phase_plane.len() / pitch;
    for i in 0..lines {
        let line_start = i * pitch;
        let y = (sh * (first_line + i) + pr)
            .checked_sub(top)
            .filter(|&y| y < h);
        let Some(y) = y.filter(|_| begin < end) else {
            // SAFETY: forwarded ISA guarantee.
            unsafe { zero_run::<S>(&mut phase_plane[line_start..], pitch) };
            continue;
        };
        // The rest of the plane from the row on: the run may read whole vectors past the
        // row's end. The left padding is written before the run, the right one after it.
        let row = &plane[y * w..];
        let x0 = sw * begin + pc - left;
        // SAFETY: forwarded ISA guarantee; the run reads x < W of row y (`end` above).
        unsafe {
            zero_run::<S>(&mut phase_plane[line_start..], begin);
            copy_strided::<S, T>(
                row,
                x0,
                sw,
                end - begin,
                &mut phase_plane[line_start + begin..],
            );
            zero_run::<S>(&mut phase_plane[line_start + end..], pitch - end);
        }
    }
}

/// Zeros `dst[..len]` in whole vectors where `dst` has room for them (they may zero up to
/// `LANES − 1` places past `len`, which the caller writes after), the rest one by one.
///
/// # Safety
/// The CPU has `S::ISA`. (`len ≤ dst.len()` is asserted.)
#[inline(always)]
unsafe fn zero_run<S: Simd>(dst: &mut [f32], len: usize) {
    assert!(len <= dst.len(), "a zero run past its destination");
    let lanes = S::LANES;
    let mut i = 0;
    while i < len && i + lanes <= dst.len() {
        // SAFETY: LANES places from i are inside `dst` (checked above).
        unsafe { S::store(dst.as_mut_ptr().add(i), S::zero()) };
        i += lanes;
    }
    if i < len {
        dst[i..len].fill(0.0);
    }
}

/// [`PaddedPlanes::pad_phase`] as a [`SimdKernel`]: the geometry is the entry's context, the
/// phase plane its buffer.
struct PadPhase<'a, T>(PhantomData<&'a [T]>);

impl<'a, T: F32Storage> SimdKernel for PadPhase<'a, T> {
    type Context = PaddedPlanes;
    type Args = (&'a [T], usize);
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(
        geometry: &PaddedPlanes,
        phase_plane: &mut [f32],
        (plane, phase): Self::Args,
    ) {
        // SAFETY: forwarded contract.
        unsafe { pad_phase_body::<S, T>(geometry, plane, phase, phase_plane) }
    }
}

/// A strided 1x1 layer's subsampled image: plane `c` of the copy holds pixel
/// `(oy·s_h, ox·s_w)` of input plane `c` at `(oy, ox)`, widened to f32.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subsampling {
    pub input_hw: [usize; 2],
    pub output_hw: [usize; 2],
    pub stride: [usize; 2],
}

impl Subsampling {
    /// Writes the subsampled planes of `planes` (whole `H·W` planes) into `copy`
    /// (`OH·OW` per plane), with vector copies on `isa` (available on this CPU).
    pub(crate) fn copy<T: F32Storage>(&self, isa: Isa, planes: &[T], copy: &mut [f32]) {
        // SAFETY: the plan's path is available on this CPU.
        unsafe { convkit_simd::call::<Subsample<'_, T>>(isa, self, copy, planes) }
    }
}

/// [`Subsampling::copy`], once for every path: one strided run per output row.
struct Subsample<'a, T>(PhantomData<&'a [T]>);

impl<'a, T: F32Storage> SimdKernel for Subsample<'a, T> {
    type Context = Subsampling;
    type Args = &'a [T];
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(geometry: &Subsampling, copy: &mut [f32], planes: &'a [T]) {
        let Subsampling {
            input_hw: [h, w],
            output_hw: [oh, ow],
            stride: [sh, sw],
        } = *geometry;
        let count = planes.len() / (h * w);
        assert!(
            ow > 0 && (ow - 1) * sw < w && (oh - 1) * sh < h && copy.len() >= count * oh * ow,
            "a subsampled row past its plane"
        );
        // Rows in order, each run reading the rest of `planes` and writing into the rest of
        // `copy` from its row: a whole vector past a row's end writes the first places of
        // the rows after it before they are written themselves, so that only a vector at
        // the end of `copy` or of `planes` is masked (`docs/tuning.md`, Strategy::Subsampled).
        for plane in 0..count {
            for oy in 0..oh {
                let (row, out) = (plane * h * w + oy * sh * w, (plane * oh + oy) * ow);
                // SAFETY: forwarded ISA guarantee; the run's last read, (OW − 1)·s_w, is
                // inside the row of a valid unpadded 1x1 layer (asserted).
                unsafe { copy_strided::<S, T>(&planes[row..], 0, sw, ow, &mut copy[out..]) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PitchedLowering, Subsampling};
    use convkit_gemm::PanelSource;

    /// Every path's stride-2 subsampled copy equals the plain gather, for rows narrower and
    /// wider than a vector (the whole vectors that run past a row's end are overwritten by
    /// the next row, the copy's last one is masked), split into chunks of planes as the plan
    /// splits it across workers.
    #[test]
    fn subsampled_copies_equal_the_plain_gather() {
        for (h, w, sh) in [(13, 13, 2), (5, 3, 1), (35, 35, 2), (9, 40, 3), (4, 17, 2)] {
            let (oh, ow) = ((h - 1) / sh + 1, (w - 1) / 2 + 1);
            let geometry = Subsampling {
                input_hw: [h, w],
                output_hw: [oh, ow],
                stride: [sh, 2],
            };
            let planes = 3;
            let input: Vec<f32> = (0..planes * h * w).map(|i| i as f32).collect();
            let expected: Vec<f32> = (0..planes * oh * ow)
                .map(|i| {
                    let (plane, oy, ox) = (i / (oh * ow), i / ow % oh, i % ow);
                    input[plane * h * w + oy * sh * w + 2 * ox]
                })
                .collect();
            for &isa in convkit_simd::available_isas() {
                for chunk in [1, planes] {
                    let mut copy = vec![f32::NAN; planes * oh * ow];
                    for (from, to) in input
                        .chunks(chunk * h * w)
                        .zip(copy.chunks_mut(chunk * oh * ow))
                    {
                        geometry.copy(isa, from, to);
                    }
                    assert_eq!(
                        copy, expected,
                        "{isa:?} {h}x{w} stride {sh}, {chunk} planes"
                    );
                }
            }
        }
    }

    /// Packed panels of a lowering whose columns are the kept ones of lines of pitch 7 (5
    /// kept): column `j` of depth step `(c, ky, kx)` is grid column `(j / 5)·7 + j % 5` of the
    /// tap's run; panels of 4 columns cross the lines' ends.
    #[test]
    fn kept_lines_pack_the_kept_columns_of_each_line() {
        let (pitch, kept, plane_len) = (7, 5, 40);
        let padded: Vec<f32> = (0..2 * plane_len).map(|i| i as f32).collect();
        let taps = [(0, 0), (0, 1), (0, 7), (0, 8)];
        let lowering = PitchedLowering {
            padded: &padded,
            plane_len,
            phases: 1,
            taps: &taps,
            stepped: None,
            kernel_hw: [2, 2],
            lines: Some((pitch, kept)),
        };
        let (outer, depth, width) = (3..14, 1..7, 4);
        let mut panels = vec![f32::NAN; 3 * width * depth.len()];
        lowering.pack(outer.clone(), depth.clone(), width, &mut panels);
        for (g, panel) in panels.chunks_exact(width * depth.len()).enumerate() {
            for (p, step) in depth.clone().enumerate() {
                let (c, tap) = (step / 4, step % 4);
                for lane in 0..width {
                    let j = outer.start + g * width + lane;
                    let expected = if j < outer.end {
                        (c * plane_len + taps[tap].1 + j / kept * pitch + j % kept) as f32
                    } else {
                        0.0
                    };
                    assert_eq!(panel[p * width + lane], expected, "column {j}, step {step}");
                }
            }
        }
    }
}
