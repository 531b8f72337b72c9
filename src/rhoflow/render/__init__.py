"""Images of molecules with headless PyMOL: density isosurfaces coloured by the ESP with a
ray-marched depth channel (EDG §3.3) and ball-and-stick structures (EDG §3.5).

:func:`build_shard` renders one density store into an image store,
:func:`build_structure_shard` the structure views of a molecule table (no density needed);
:func:`export_pngs` writes one molecule's images as PNG files. Settings are the config's
``render`` section, complete (``rhoflow.config.section_settings("render", ...)``, as the
``rhoflow render`` commands fill it), less ``engine``.
"""

from rhoflow.render.store import (
    build_shard,
    build_structure_shard,
    export_gallery,
    export_pngs,
    open_images,
)

__all__ = [
    "build_shard",
    "build_structure_shard",
    "export_gallery",
    "export_pngs",
    "open_images",
]
