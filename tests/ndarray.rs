//! The `ndarray` feature: views in the spec's layout run like slices; other orders are errors.

use convkit::{ConvError, ConvSpec, Layout, Padding, PlanOptions};
use ndarray::{Array4, ShapeBuilder};

#[test]
fn standard_views_run_like_slices_in_both_layouts() {
    for layout in [Layout::Nchw, Layout::Nhwc] {
        let spec = ConvSpec::new(2, 3, 5, [6, 7], [3, 3])
            .padding(Padding::symmetric([1, 1]))
            .layout(layout);
        let weights: Vec<f32> = (0..spec.weight_len().unwrap())
            .map(|i| (i % 7) as f32 - 3.0)
            .collect();
        let plan = convkit::plan(&spec, &weights, None, &PlanOptions::new()).unwrap();
        let dims = match layout {
            Layout::Nchw => ((2, 3, 6, 7), (2, 5, 6, 7)),
            Layout::Nhwc => ((2, 6, 7, 3), (2, 6, 7, 5)),
        };
        let input = Array4::from_shape_fn(dims.0, |(a, b, c, d)| (a + 2 * b + 3 * c + d) as f32);
        let mut output = Array4::<f32>::zeros(dims.1);
        plan.run_array(input.view(), output.view_mut()).unwrap();
        let mut expected = vec![0.0; spec.output_len().unwrap()];
        plan.run(input.as_slice().unwrap(), &mut expected).unwrap();
        assert_eq!(output.as_slice().unwrap(), expected.as_slice());
    }
}

#[test]
fn wrong_dimensions_and_non_standard_strides_are_errors() {
    let spec = ConvSpec::new(1, 2, 2, [4, 4], [3, 3]);
    let plan = convkit::plan(&spec, &[0.5f32; 36], None, &PlanOptions::new()).unwrap();
    let mut output = Array4::<f32>::zeros((1, 2, 2, 2));
    let wrong = Array4::<f32>::zeros((1, 2, 4, 5));
    assert!(matches!(
        plan.run_array(wrong.view(), output.view_mut()),
        Err(ConvError::ArrayLayout { array: "input", .. })
    ));
    // Column-major: the right dimensions, in Fortran order.
    let fortran = Array4::<f32>::zeros((1, 2, 4, 4).f());
    let error = plan
        .run_array(fortran.view(), output.view_mut())
        .unwrap_err();
    assert!(
        matches!(error, ConvError::ArrayLayout { array: "input", .. }),
        "{error}"
    );
    assert!(output.iter().all(|&v| v == 0.0), "nothing written on error");
}
