#!/bin/sh
# Last steps of the sandbox image, shared by both build paths: run as root inside the
# image's root filesystem (in a chroot for the rootfs path, as a RUN step for the
# Dockerfile path), with this recipe folder as $1.
#
# Each step is here because the sandbox runs with a read-only root filesystem, as
# uid 1000, with no capabilities and no-new-privileges: what cannot be written at run
# time must be prepared now, and nothing in the image may carry privileges.
set -eu

RECIPE_DIR=${1:?usage: finalize.sh RECIPE_DIR}
SITE=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
STDLIB=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
MPL_SEED=/usr/local/share/sandbox-kernel/matplotlib

# pip --target also writes console scripts (with the host's interpreter in their
# shebang) and Jupyter frontend data next to the packages; the kernel needs neither.
rm -rf "$SITE/bin" "$SITE/etc" "$SITE/share"

# The test suites of the big scientific packages are a sixth of the image and are never
# imported by notebook code (numpy.testing and pandas._testing live outside them).
for pkg in numpy scipy pandas sklearn; do
    if [ -d "$SITE/$pkg" ]; then
        find "$SITE/$pkg" -depth -type d -name tests -exec rm -rf {} +
    fi
done

# Hook that seeds matplotlib's font cache (see _sandbox_kernel_mplcache.py for why).
cp "$RECIPE_DIR/_sandbox_kernel_mplcache.py" "$RECIPE_DIR/sandbox_kernel_mplcache.pth" "$SITE/"

# Bytecode now: the root filesystem is read-only at run time, so a module without a .pyc
# in the image is compiled again on every import of every kernel start (seconds for
# IPython, numpy and pandas). Errors in files no one imports (templates, py2 leftovers)
# must not fail the image, so compileall's exit code only warns.
python3 -m compileall -q -j0 "$SITE" "$STDLIB" >/dev/null \
    || echo "finalize: some files did not byte-compile (ignored)" >&2

# The exact package list (name==version), so that a notebook can record its environment:
# `%sandbox info`, the kernel's banner and `sandbox-kernel doctor` show it (the rootfs
# build also copies it into the image label sandbox-kernel.packages).
mkdir -p /usr/local/share/sandbox-kernel
python3 -c 'import importlib.metadata as m
names = {d.metadata["Name"] + "==" + d.version for d in m.distributions()}
print("\n".join(sorted(names, key=str.lower)))' \
    > /usr/local/share/sandbox-kernel/packages.txt
chmod a+r /usr/local/share/sandbox-kernel/packages.txt

# The matplotlib font list, built once here instead of on the first pyplot import of
# every kernel; the hook above copies it into the writable cache folder at run time.
mkdir -p "$MPL_SEED"
MPLCONFIGDIR="$MPL_SEED" MPLBACKEND=Agg python3 -c 'import matplotlib.font_manager'
chmod -R a+rX "$MPL_SEED"
ls "$MPL_SEED"/fontlist-*.json >/dev/null

# The sandbox user. uid/gid 1000 is what the sandbox runs as; naming it keeps `id`,
# getpass and IPython's prompt happy. Its home is on the /tmp tmpfs, the only writable
# place at run time.
if ! grep -q '^[^:]*:[^:]*:1000:' /etc/group; then
    echo 'sandbox:x:1000:' >> /etc/group
fi
if ! grep -q '^[^:]*:[^:]*:1000:' /etc/passwd; then
    echo 'sandbox:x:1000:1000:sandbox:/tmp/home:/usr/sbin/nologin' >> /etc/passwd
fi

# No file may carry setuid/setgid: no-new-privileges already neutralises them, but an
# image that has none is safe even when someone runs it without that option. Folders
# lose their setgid bit too (/var/mail, /var/local): nothing here needs it, and
# "nothing in the image has either bit" is simpler to check than exceptions.
find / -xdev -perm /6000 -exec chmod ug-s {} +

# Smaller image: package caches and lists, documentation, translations.
rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/* \
    /usr/share/doc/* /usr/share/man/* /usr/share/info/* /root/.cache
if [ -d /usr/share/locale ]; then
    find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
fi
