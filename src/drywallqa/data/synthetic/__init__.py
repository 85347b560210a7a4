"""Built-in synthetic sample data: rendered drywall photos with exact masks (``drywallqa sample-data``).

:func:`generate_sample_data` writes two small datasets in the same Roboflow COCO layout as the real
exports, so every stage (loading, pseudo-masks, training, evaluation) can be tried and tested
without downloading anything::

    OUT/README.md                                   # what this is
    OUT/sample-data.json                            # manifest: parameters, written files, shared groups
    OUT/cracks/{train,valid,test}/_annotations.coco.json + JPEGs
    OUT/drywall-join/{train,valid}/_annotations.coco.json + JPEGs         # box-only, like the real export
    OUT/drywall-join/{train,valid}/_annotations.truth.coco.json           # true joint masks as RLE

Crack annotations are polygons traced from the drawn crack (a few as compressed or uncompressed
RLE, so every COCO segmentation kind occurs). Joint annotations are tight boxes only, exactly
like the real ``drywall-join`` export; the true joint masks go to a separate truth file with the
same image and annotation ids, so pseudo-masks made from the boxes can be scored against the
truth, which the real data cannot do.

Each source rendering is exported in one to three variants (identity, flips, 90° rotations, crops)
with Roboflow-style names ``<source>_jpg.rf.<32 hex>.jpg``, so variants share a source group (see
:func:`drywallqa.data.groups.source_group`). Cracks splits are group-clean; in drywall-join a few
groups have variants in both train and valid on purpose, as in the real export.

Modules: :mod:`.painting` renders one scene and its masks (:func:`render_sample_image`);
:mod:`.plan` chooses sources, variants and splits; :mod:`.annotations` assembles the COCO
records; :mod:`.writing` writes the folder (:func:`generate_sample_data`). :mod:`.width_targets`
renders single cracks of known width, with camera blur, noise and JPEG, for validating the crack
width measured on the photo (:func:`render_width_target`; not part of the sample data).

Example:
    >>> paths = generate_sample_data("sample-data", images=40, size=256)   # doctest: +SKIP
    >>> AnnotatedDataset.load(paths.cracks)                                # doctest: +SKIP
    AnnotatedDataset('cracks', 20 images, splits={...}, classes=['crack'])
"""

from drywallqa.data.synthetic.annotations import TRUTH_ANNOTATION_FILE
from drywallqa.data.synthetic.painting import CRACKS_DATASET, JOINTS_DATASET, RenderedImage, render_sample_image
from drywallqa.data.synthetic.width_targets import WidthTarget, render_width_target
from drywallqa.data.synthetic.writing import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    SampleDataPaths,
    generate_sample_data,
    read_manifest,
)

__all__ = [
    "CRACKS_DATASET", "FORMAT_VERSION", "JOINTS_DATASET", "MANIFEST_FILE", "TRUTH_ANNOTATION_FILE", "RenderedImage",
    "SampleDataPaths", "WidthTarget", "generate_sample_data", "read_manifest", "render_sample_image",
    "render_width_target",
]
