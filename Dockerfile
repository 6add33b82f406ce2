# bioauth server image (CPU). Build: docker build -t bioauth .
# GPU: docker build --build-arg ORT_PACKAGE=onnxruntime-gpu -t bioauth-gpu . (on a CUDA base image
# of matching CUDA/cuDNN majors; see docs/benchmarks.md, section GPU).
# Configuration comes from a TOML file (BIOAUTH_CONFIG) and BIOAUTH_<SECTION>__<FIELD> variables;
# production must name its key provider (pkcs11 or vault) and its own secrets.
FROM python:3.11-slim-bookworm AS build

ARG ORT_PACKAGE=onnxruntime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY protos ./protos
COPY models ./models
COPY clients ./clients
COPY server ./server
RUN python -m venv /opt/bioauth \
 && /opt/bioauth/bin/pip install -c constraints.txt ./protos/python ./clients/python . \
 && if [ "$ORT_PACKAGE" != "onnxruntime" ]; then \
        /opt/bioauth/bin/pip uninstall -y onnxruntime && /opt/bioauth/bin/pip install "$ORT_PACKAGE"; \
    fi
# The model is converted from the pinned weights at build time and checked against the manifest.
RUN /opt/bioauth/bin/bioauth model build --manifest /src/models/dlib_resnet_v1/manifest.json --out /opt/bioauth-models

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home /var/lib/bioauth --create-home bioauth
COPY --from=build /opt/bioauth /opt/bioauth
COPY --from=build /opt/bioauth-models /opt/bioauth-models
COPY --from=build /src/models /opt/bioauth-src/models
ENV PATH=/opt/bioauth/bin:$PATH \
    BIOAUTH_SERVER__HOST=0.0.0.0 \
    BIOAUTH_INFERENCE__MANIFEST=/opt/bioauth-src/models/dlib_resnet_v1/manifest.json \
    BIOAUTH_INFERENCE__CACHE_DIR=/opt/bioauth-models \
    BIOAUTH_STORE__URL=sqlite:////var/lib/bioauth/bioauth.sqlite3 \
    BIOAUTH_KEYS__LOCAL_PATH=/var/lib/bioauth/dev-keys.json
USER bioauth
WORKDIR /var/lib/bioauth
EXPOSE 50051
STOPSIGNAL SIGTERM
ENTRYPOINT ["bioauth"]
CMD ["serve"]
