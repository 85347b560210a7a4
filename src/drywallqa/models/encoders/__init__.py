"""Image encoders that turn normalised images into a feature pyramid at strides 2 to 32."""

from drywallqa.models.encoders.efficientnet_lite import (
    LITE_VARIANTS,
    EfficientNetLiteEncoder,
    load_lite_state_dict,
)

__all__ = ["LITE_VARIANTS", "EfficientNetLiteEncoder", "load_lite_state_dict"]
