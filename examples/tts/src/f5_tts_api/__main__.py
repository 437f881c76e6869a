"""Print what the service would load; the real one serves HTTP."""

import os

from f5_tts_api import VERSION


def main():
    models = os.environ.get("MODELS_DIR", "/app/models")
    print(f"f5-tts-api {VERSION}: models in {models}:", sorted(os.listdir(models)))


if __name__ == "__main__":
    main()
