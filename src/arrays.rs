//! The `ndarray` feature: [`Plan::run_array`] on four-dimensional views, in the spec's layout
//! (`[n, c, h, w]` for NCHW, `[n, h, w, c]` for NHWC). Views in any other order or with
//! gaps are rejected with `ConvError::ArrayLayout`, never copied behind the caller's back:
//! `.as_standard_layout()` makes a contiguous copy where one is wanted.

use crate::{ConvError, Element, Layout, Plan};
use ndarray::{ArrayView4, ArrayViewMut4, Dimension};

/// `[n, c, h, w]` or `[n, h, w, c]` of an activation tensor in `layout`.
fn dims(layout: Layout, [n, c, h, w]: [usize; 4]) -> [usize; 4] {
    match layout {
        Layout::Nchw => [n, c, h, w],
        Layout::Nhwc => [n, h, w, c],
    }
}

/// `Err` unless `shape` is `expected` and the strides are the standard order.
fn check(
    array: &'static str,
    shape: &[usize],
    standard: bool,
    expected: [usize; 4],
    layout: Layout,
) -> Result<(), ConvError> {
    if shape != expected {
        return Err(ConvError::ArrayLayout {
            array,
            reason: format!("dimensions {shape:?}, expected {expected:?} ({layout:?})"),
        });
    }
    if !standard {
        return Err(ConvError::ArrayLayout {
            array,
            reason: "strides are not the standard (C-contiguous) order; \
                     `.as_standard_layout()` makes a contiguous copy"
                .to_owned(),
        });
    }
    Ok(())
}

impl<T: Element> Plan<T> {
    /// [`Plan::run`] on `ndarray` views in the spec's layout. The views must be in standard
    /// (C-contiguous) order: a transposed or sliced view is an error, not a silent copy.
    pub fn run_array(
        &self,
        input: ArrayView4<'_, T>,
        mut output: ArrayViewMut4<'_, T>,
    ) -> Result<(), ConvError> {
        let shape = self.shape();
        let layout = shape.layout();
        let [h, w] = shape.input_hw();
        let [oh, ow] = shape.output_hw();
        let n = shape.batch();
        let input_dims = dims(layout, [n, shape.in_channels(), h, w]);
        let output_dims = dims(layout, [n, shape.out_channels(), oh, ow]);
        check(
            "input",
            input.raw_dim().slice(),
            input.is_standard_layout(),
            input_dims,
            layout,
        )?;
        check(
            "output",
            output.raw_dim().slice(),
            output.is_standard_layout(),
            output_dims,
            layout,
        )?;
        let not_contiguous = |array| ConvError::ArrayLayout {
            array,
            reason: "not contiguous".to_owned(),
        };
        let input = input.as_slice().ok_or_else(|| not_contiguous("input"))?;
        let output = output
            .as_slice_mut()
            .ok_or_else(|| not_contiguous("output"))?;
        self.run(input, output)
    }
}
