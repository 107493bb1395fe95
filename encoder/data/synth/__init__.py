"""Synthetic multi-camera multimodal world (RGB, IR, sketch, text, video) for training,
evaluating and demoing AIO without real data; written in the public dataset layouts.

Quick use::

    from aioreid.encoder.data.synth import SynthConfig, generate_world
    manifest = generate_world(Path("data/synth"), SynthConfig(identities=100, seed=0))
"""

from .attributes import IdentityAttributes, sample_identity
from .camera import Camera
from .captions import Caption, describe, describe_structured, tokenize
from .footage import FootageOptions, write_footage
from .render_ir import render_ir
from .render_rgb import render_rgb
from .render_sketch import render_sketch
from .world import GENERATOR_VERSION, SynthConfig, WorldManifest, build_cameras, generate_world

__all__ = [
    "GENERATOR_VERSION",
    "Camera",
    "Caption",
    "FootageOptions",
    "IdentityAttributes",
    "SynthConfig",
    "WorldManifest",
    "build_cameras",
    "describe",
    "describe_structured",
    "generate_world",
    "render_ir",
    "render_rgb",
    "render_sketch",
    "sample_identity",
    "tokenize",
    "write_footage",
]
