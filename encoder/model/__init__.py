"""AIO model: multimodal tokenizers, frozen backbones, training heads and losses."""

from .aio import (
    CHECKPOINT_FORMAT,
    DEFAULT_TRAIN_VIEWS,
    AIOConfig,
    AIOModel,
    BackboneMismatchError,
    Features,
    parse_view,
)
from .backbones import (
    BackboneUnavailableError,
    FrozenBackbone,
    HFBertBackbone,
    TimmViTBackbone,
    available_backbones,
    build_backbone,
    minilm_path,
)
from .heads import DEFAULT_ATTRIBUTE_WORDS, MFBHead, VGMAMHead, mask_attribute_words
from .losses import (
    batch_hard_triplet_loss,
    euclidean_distances,
    label_smoothing_cross_entropy,
    supervised_infonce,
)
from .objectives import compute_losses
from .tokenizers import (
    CANONICAL_ORDER,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageTokenizer,
    MultimodalTokenizer,
    Part,
    TextBatch,
    TextTokenizer,
    load_hf_tokenizer,
    normalize_images,
)

__all__ = [
    "CANONICAL_ORDER",
    "CHECKPOINT_FORMAT",
    "DEFAULT_ATTRIBUTE_WORDS",
    "DEFAULT_TRAIN_VIEWS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AIOConfig",
    "AIOModel",
    "BackboneMismatchError",
    "BackboneUnavailableError",
    "Features",
    "FrozenBackbone",
    "HFBertBackbone",
    "ImageTokenizer",
    "MFBHead",
    "MultimodalTokenizer",
    "Part",
    "TextBatch",
    "TextTokenizer",
    "TimmViTBackbone",
    "VGMAMHead",
    "available_backbones",
    "batch_hard_triplet_loss",
    "build_backbone",
    "compute_losses",
    "euclidean_distances",
    "label_smoothing_cross_entropy",
    "load_hf_tokenizer",
    "mask_attribute_words",
    "minilm_path",
    "normalize_images",
    "parse_view",
    "supervised_infonce",
]
