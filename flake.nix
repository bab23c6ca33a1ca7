{
  description = "kiln: recipes in, signed and reproducible Python wheels out, served as a package index";

  # nixos-25.11, locked in flake.lock to one revision and its NAR hash.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      lib = nixpkgs.lib;
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      pyproject = builtins.fromTOML (builtins.readFile ./pyproject.toml);
      pythonDeps = import ./nix/python-deps.nix { pyproject = ./pyproject.toml; };

      # The locked nixpkgs revision. kiln records it in every build it runs with these tools
      # (the build record's `flake` field, which the provenance carries).
      nixpkgsRev = nixpkgs.rev;

      # The CPythons kiln builds wheels for, and the programs it drives. No compiler: hermetic
      # builds use kiln's own pinned zig (the ziglang wheel, by sha256), whatever is on PATH.
      toolbox = pkgs: with pkgs;
        [ python310 python311 python312 python313 patchelf git qemu libfaketime ]
        # Linux-only: the sandbox, and diffoscope (whose closure does not build on macOS).
        ++ lib.optionals stdenv.hostPlatform.isLinux [ bubblewrap diffoscope ];

      kilnFor = pkgs:
        let
          py = pkgs.python3.pkgs;
          names = if pkgs.stdenv.hostPlatform.isLinux then pythonDeps.linux else pythonDeps.darwin;
          dependency = name: py.${name} or (throw
            "kiln's flake: nixpkgs has no Python package '${name}', which pyproject.toml lists");
        in
        py.buildPythonApplication {
          pname = "kiln";
          version = pyproject.project.version;
          pyproject = true;
          src = lib.fileset.toSource {
            root = ./.;
            fileset = lib.fileset.unions [ ./pyproject.toml ./README.md ./kiln ];
          };
          build-system = [ py.setuptools ];
          dependencies = map dependency names;
          # Programs nixpkgs provides (see nix/python-deps.nix), not Python packages.
          pythonRemoveDeps = pythonDeps.fromNixpkgs;
          makeWrapperArgs = [
            "--prefix" "PATH" ":" (lib.makeBinPath (toolbox pkgs))
            "--set-default" "KILN_FLAKE_NIXPKGS" nixpkgsRev
          ];
          # The test suite runs in CI (.ci/run); here, that the package imports.
          doCheck = false;
          pythonImportsCheck = [ "kiln" "kiln.cli" ];
          meta = {
            description = pyproject.project.description;
            mainProgram = "kiln";
          };
        };
    in
    {
      packages = forAllSystems (pkgs: rec {
        kiln = kilnFor pkgs;
        default = kiln;
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = "${kilnFor pkgs}/bin/kiln";
          meta.description = "Run kiln with the pinned toolbox on PATH";
        };
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = toolbox pkgs ++ [ (kilnFor pkgs) pkgs.uv pkgs.nodejs ];
          KILN_FLAKE_NIXPKGS = nixpkgsRev;
          shellHook = ''
            echo "kiln toolbox: nixpkgs ${nixpkgsRev} (recorded by builds as KILN_FLAKE_NIXPKGS)"
          '';
        };
      });
    };
}
