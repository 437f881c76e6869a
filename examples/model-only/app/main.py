import sys

print("model-only example:", sys.argv[1:])
