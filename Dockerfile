# pixelgate's server image: `docker build -t pixelgate .` (CPU PyTorch), or for NVIDIA GPUs
# `docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t pixelgate:cuda .`
# (run with `--gpus all` and PIXELGATE_DEVICE=cuda). One image for every role:
# `serve` (the default command) and `worker --models ...`. See docs/deployment.md and compose.yaml.
ARG BASE=python:3.12-slim-bookworm
ARG EXTRAS=all
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC=torch==2.13.0

# Layers in the order things change, so that a build cache (`buildah build --layers`, Docker's
# own) redoes only what a change touches: pixelgate's source changes far more often than its
# requirements, and a change to it alone reinstalls pixelgate, not torch and the rest.
FROM ${BASE} AS dependencies
ARG EXTRAS
ARG TORCH_INDEX
ARG TORCH_SPEC
ENV PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml LICENSE ./
COPY scripts/install-server scripts/fetch-weights scripts/
# everything but pixelgate: install-server on a stand-in package of the same name and
# requirements (a command line that does nothing, a README of one line: the real one changes
# with every note and is copied below), then uninstalled; its build files go too, or setuptools
# would keep the stand-in's (newer) files when it builds the real package
RUN mkdir -p pixelgate/cli && touch pixelgate/__init__.py pixelgate/cli/__init__.py \
    && echo 'def main() -> None: pass' > pixelgate/cli/main.py && echo pixelgate > README.md \
    && PIXELGATE_TORCH_INDEX="$TORCH_INDEX" PIXELGATE_TORCH_SPEC="$TORCH_SPEC" \
    scripts/install-server /opt/pixelgate/venv /opt/pixelgate/weights "$EXTRAS" \
    && /opt/pixelgate/venv/bin/python -m pip uninstall --quiet --yes pixelgate \
    && rm -r pixelgate pixelgate.egg-info build README.md

FROM dependencies AS build
ARG EXTRAS
ARG TORCH_INDEX
ARG TORCH_SPEC
COPY README.md ./
COPY pixelgate pixelgate
# pixelgate itself (its requirements are met), and a copy of just its installed files in /staged
RUN PIXELGATE_TORCH_INDEX="$TORCH_INDEX" PIXELGATE_TORCH_SPEC="$TORCH_SPEC" \
    scripts/install-server /opt/pixelgate/venv /opt/pixelgate/weights "$EXTRAS" \
    && /opt/pixelgate/venv/bin/python -I -c "import importlib.metadata as m; \
d = m.distribution('pixelgate'); print(*(d.locate_file(f).resolve() for f in d.files), sep='\n')" \
    > /src/installed \
    && tar --create --file=/src/installed.tar --verbatim-files-from --files-from=/src/installed \
    && mkdir /staged && tar --extract --file=/src/installed.tar --directory=/staged

FROM ${BASE}
RUN groupadd --system --gid 10001 pixelgate \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/pixelgate pixelgate \
    && mkdir -p /models /opt/pixelgate/numba-cache \
    && chown pixelgate:pixelgate /models /opt/pixelgate/numba-cache
COPY --from=dependencies /opt/pixelgate /opt/pixelgate
ENV PATH=/opt/pixelgate/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIXELGATE_HOST=0.0.0.0 \
    PIXELGATE_PORT=8000 \
    PIXELGATE_DATA_DIR=/var/lib/pixelgate \
    PIXELGATE_MODELS_DIR=/models \
    PIXELGATE_REMBG_HOME=/opt/pixelgate/weights/rembg \
    PIXELGATE_SAFETY_MODEL_FILE=/opt/pixelgate/weights/safety/open-nsfw.onnx \
    NUMBA_CACHE_DIR=/opt/pixelgate/numba-cache
USER 10001:10001
# rembg's import compiles pymatting's numba kernels (about 40 s) into a cache its user can
# write (numba ignores one it cannot): done once here, not on each container's first removal
RUN python -c "import importlib.util as u; u.find_spec('rembg') and __import__('rembg')"
COPY --from=build /staged/ /
WORKDIR /var/lib/pixelgate
VOLUME ["/var/lib/pixelgate", "/models"]
EXPOSE 8000
# ready once the database, storage and the preloaded models are (the default model loads in
# seconds on a CPU; a large one on a GPU may need a longer start period)
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PIXELGATE_PORT'], timeout=4)"]
ENTRYPOINT ["pixelgate"]
CMD ["serve"]
