//! `lemur appliance upgrade`: installs a staged release bundle into the root slot the appliance
//! is not running from, as root (lemur-upgrade.service), and makes it the next boot's entry,
//! on trial.
//!
//! The disk has two root slots, `a` and `b`, each a dm-verity protected file system and its
//! hash tree (partitions `lemur-root-X` and `lemur-verity-X`), and one systemd-boot entry per
//! slot on the ESP (`loader/entries/lemur-X….conf`, kernel and initrd in `/X/`). The order of
//! work keeps a bootable entry at every moment:
//! 1. the inactive slot's entry is removed first, so nothing boots the slot being overwritten;
//! 2. the bundle is written into that slot and its ESP directory while it is checked (signature,
//!    then every member's digest); a bundle that fails leaves the slot without an entry;
//! 3. the new entry is written last, with a boot counter (`lemur-X+3.conf`) and a higher
//!    `version` than any other entry, so systemd-boot prefers it. Each boot of it counts one
//!    try down; a boot that reaches `boot-complete.target` (the daemon ready and nginx serving,
//!    `lemur-boot-check.service`) makes systemd-bless-boot drop the counter. Once three tries are
//!    spent the entry sorts last, and the slot the appliance came from boots again. Before it,
//!    a marker names the slot on trial, so that the database is kept as it was before the new
//!    release ran, and put back if that release fails after migrating it (`trial.rs`).

use lemur_core::files::{ensure_private_dir, open_untrusted, sync_dir};
use lemur_core::upgrade::status::{UpgradeState, UpgradeStatus};
use lemur_core::upgrade::{self, Manifest, ReleaseKey};
use lemur_core::{Error, Result, clock};
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Boots a new entry gets to come up healthy.
const TRIES: u32 = 3;
/// systemd-boot's order among entries of the same sort key is newest `version` first.
const SORT_KEY: &str = "lemur-hsm";

/// `lemur appliance upgrade`.
#[derive(clap::Args)]
pub struct Options {
    /// The bundle, as the daemon staged it.
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// The release key it must be signed with.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/usr/share/lemur-hsm/upgrade-key.pem"
    )]
    key: PathBuf,
    /// The EFI system partition.
    #[arg(long, value_name = "DIR", default_value = "/efi")]
    esp: PathBuf,
    /// Where udev names partitions (by-partlabel/, by-partuuid/).
    #[arg(long, value_name = "DIR", default_value = "/dev/disk")]
    disks: PathBuf,
    /// The running kernel's command line, which names the running slot (lemur.slot=).
    #[arg(long, value_name = "FILE", default_value = "/proc/cmdline")]
    cmdline: PathBuf,
    /// The kernel's view of block devices, which says which disk the running root is on.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    sys: PathBuf,
    /// Where to leave the marker of the trial (see `lemur appliance trial`).
    #[arg(long, value_name = "FILE", default_value = super::trial::MARKER)]
    trial_marker: PathBuf,
    /// Where to keep the upgrade's status, for the daemon (`[upgrades] status`).
    #[arg(long, value_name = "FILE", default_value = super::trial::STATUS)]
    status: PathBuf,
}

/// A root slot: `a` or `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot(char);

impl Slot {
    /// The slot the kernel command line `cmdline` says is running.
    pub fn running(cmdline: &str) -> Result<Self> {
        match cmdline
            .split_whitespace()
            .find_map(|word| word.strip_prefix("lemur.slot="))
        {
            Some("a") => Ok(Slot('a')),
            Some("b") => Ok(Slot('b')),
            _ => Err(Error::invalid(
                "cmdline",
                "the kernel command line names no root slot (lemur.slot=a or b): this is not a \
                 Lemur-HSM appliance booted from one of its slots",
            )),
        }
    }

    fn other(self) -> Self {
        Slot(if self.0 == 'a' { 'b' } else { 'a' })
    }

    /// Whether `file` is one of this slot's boot entries (`lemur-a.conf`, `lemur-a+3.conf`,
    /// `lemur-a+2-1.conf`).
    fn owns_entry(self, file: &str) -> bool {
        let Some(rest) = file
            .strip_prefix(&format!("lemur-{}", self.0))
            .and_then(|rest| rest.strip_suffix(".conf"))
        else {
            return false;
        };
        rest.is_empty() || rest.starts_with('+')
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Runs `lemur appliance upgrade`, keeping its status for the daemon: installing (with the
/// bytes written), then restarting into it, or failed.
pub fn run(options: &Options) -> Result<()> {
    let cmdline = std::fs::read_to_string(&options.cmdline)
        .map_err(Error::io(format!("reading {}", options.cmdline.display())))?;
    let target = Slot::running(&cmdline)?.other();
    // Its size from the file opened, never through a link the daemon's user could plant.
    let bundle = open_untrusted(&options.bundle, None)?;
    let total = bundle.metadata().map_or(0, |found| found.len());
    let progress = Progress::start(&options.status, target, total);
    let installed = install(options, target, bundle, &progress);
    let (state, version, error) = match &installed {
        Ok(manifest) => (
            UpgradeState::Restarting,
            Some(manifest.version.clone()),
            None,
        ),
        Err(error) => (UpgradeState::Failed, None, Some(error.to_string())),
    };
    progress.finish(state, version, error);
    installed.map(|_| ())
}

/// The status of an installation, written as it goes (at most every [`Progress::EVERY`]). Best
/// effort throughout: a record for the daemon is never worth an installation, nor the restart
/// that follows one.
struct Progress {
    path: PathBuf,
    status: RefCell<UpgradeStatus>,
    last_written: Cell<Instant>,
}

impl Progress {
    const EVERY: Duration = Duration::from_secs(2);

    fn start(path: &Path, slot: Slot, total: u64) -> Self {
        let now = clock::system().unix();
        let status = UpgradeStatus {
            state: UpgradeState::Installing,
            version: None,
            from_version: env!("CARGO_PKG_VERSION").to_owned(),
            slot: slot.to_string(),
            written: 0,
            total,
            started_at: now,
            updated_at: now,
            error: None,
        };
        let progress = Self {
            path: path.to_owned(),
            status: RefCell::new(status),
            last_written: Cell::new(Instant::now()),
        };
        progress.write(&progress.status.borrow());
        progress
    }

    fn write(&self, status: &UpgradeStatus) {
        let written = match self.path.parent() {
            Some(dir) => ensure_private_dir(dir),
            None => Ok(()),
        }
        .and_then(|()| lemur_core::status_file::write(&self.path, status));
        if let Err(error) = written {
            eprintln!("lemur: the upgrade's status: {error}");
        }
    }

    /// Counts `bytes` more read; the file follows now and then.
    fn add(&self, bytes: usize) {
        let mut status = self.status.borrow_mut();
        status.written += bytes as u64;
        if self.last_written.get().elapsed() >= Self::EVERY {
            status.updated_at = clock::system().unix();
            self.write(&status);
            self.last_written.set(Instant::now());
        }
    }

    fn finish(&self, state: UpgradeState, version: Option<String>, error: Option<String>) {
        let mut status = self.status.borrow_mut();
        if state == UpgradeState::Restarting {
            // All of it is in: the tar archive's padding after the last member is never read.
            status.written = status.total;
        }
        status.state = state;
        status.version = version;
        status.error = error;
        status.updated_at = clock::system().unix();
        self.write(&status);
    }
}

/// The bundle, read into the installation's progress (each member is written as it is read).
struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.progress.add(read);
        Ok(read)
    }
}

/// Writes the bundle into slot `target` and makes it the next boot's entry, on trial.
fn install(options: &Options, target: Slot, bundle: File, progress: &Progress) -> Result<Manifest> {
    let key = ReleaseKey::load(&options.key)?;
    let disk = running_disk(&options.sys)?;
    let root = Partition::find(&options.disks, &format!("lemur-root-{target}"))?;
    let verity = Partition::find(&options.disks, &format!("lemur-verity-{target}"))?;
    for partition in [&root, &verity] {
        partition.check_on(&options.sys, &disk)?;
    }
    let entries = options.esp.join("loader/entries");
    remove_entries(&entries, target)?;
    let kernel_dir = options.esp.join(target.to_string());
    std::fs::create_dir_all(&kernel_dir)
        .map_err(Error::io(format!("creating {}", kernel_dir.display())))?;
    println!(
        "installing {} into root slot {target}",
        options.bundle.display()
    );
    let bundle = Counted {
        inner: bundle,
        progress,
    };
    let manifest = upgrade::read(std::io::BufReader::new(bundle), &key, |name, size| {
        let writer: Box<dyn Write> = match name {
            "root.img" => Box::new(root.open(size)?),
            "verity.img" => Box::new(verity.open(size)?),
            _ => Box::new(Durable::create(&kernel_dir.join(name))?),
        };
        Ok(writer)
    })?;
    sync_dir(&kernel_dir)?;
    let running = env!("CARGO_PKG_VERSION");
    if upgrade::is_older(&manifest.version, running) {
        return Err(Error::invalid(
            "bundle",
            format!(
                "release {} is older than the running {running}: an appliance is never \
                 downgraded (its slot {target} is left without a boot entry)",
                manifest.version
            ),
        ));
    }
    let generation = newest_generation(&entries)? + 1;
    let entry = Entry {
        slot: target,
        generation,
        manifest: &manifest,
        root: &root,
        verity: &verity,
    };
    // Before the entry: a trial boot always finds its marker.
    super::trial::write_marker(&options.trial_marker, target, &manifest.version)?;
    let file = entries.join(format!("lemur-{target}+{TRIES}.conf"));
    lemur_core::files::replace_if_changed(&file, entry.text().as_bytes(), 0o644)?;
    sync_dir(&entries)?;
    println!(
        "installed Lemur-HSM {} (source {}) into root slot {target}; it boots next, on trial for \
         {TRIES} boots",
        manifest.version, manifest.source
    );
    Ok(manifest)
}

/// The disk the running root is on (`vda`): that of the devices under the verity device named
/// `root` (`/sys/block/dm-N/dm/name`, its `slaves/`), which is what the kernel reads, whatever
/// udev's links say when another disk holds partitions of the same labels (a second appliance
/// disk, an image written to a stick).
fn running_disk(sys: &Path) -> Result<String> {
    let context = || {
        format!(
            "finding the disk the running root is on, in {}",
            sys.display()
        )
    };
    let block = sys.join("block");
    for entry in std::fs::read_dir(&block).map_err(Error::io(context()))? {
        let dm = entry.map_err(Error::io(context()))?.path();
        let is_root =
            std::fs::read_to_string(dm.join("dm/name")).is_ok_and(|name| name.trim() == "root");
        if !is_root {
            continue;
        }
        let mut disks = std::collections::BTreeSet::new();
        for slave in std::fs::read_dir(dm.join("slaves")).map_err(Error::io(context()))? {
            let name = slave.map_err(Error::io(context()))?.file_name();
            disks.insert(disk_of(sys, &name.to_string_lossy())?);
        }
        let mut disks = disks.into_iter();
        return match (disks.next(), disks.next()) {
            (Some(disk), None) => Ok(disk),
            _ => Err(Error::io(context())(std::io::Error::other(
                "the root's verity device is not on exactly one disk",
            ))),
        };
    }
    Err(Error::io(context())(std::io::Error::other(
        "no device-mapper device named root: this is not a Lemur-HSM appliance booted from a slot",
    )))
}

/// The disk a partition (`vda4`) is on: its parent in sysfs.
fn disk_of(sys: &Path, partition: &str) -> Result<String> {
    let link = sys.join("class/block").join(partition);
    let device = link
        .canonicalize()
        .map_err(Error::io(format!("resolving {}", link.display())))?;
    device
        .parent()
        .and_then(Path::file_name)
        .map(|disk| disk.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::io(format!("finding the disk of {partition}"))(std::io::Error::other(
                "it has no parent device",
            ))
        })
}

/// A partition found by its GPT label.
struct Partition {
    device: PathBuf,
    uuid: String,
}

impl Partition {
    /// The partition labelled `label`, and its PARTUUID (for the kernel command line).
    fn find(disks: &Path, label: &str) -> Result<Self> {
        let link = disks.join("by-partlabel").join(label);
        let device = link.canonicalize().map_err(|e| {
            Error::io(format!(
                "finding partition {label} ({}): is this the appliance's disk?",
                link.display()
            ))(e)
        })?;
        let by_uuid = disks.join("by-partuuid");
        let listing = std::fs::read_dir(&by_uuid)
            .map_err(Error::io(format!("listing {}", by_uuid.display())))?;
        let uuid = listing
            .filter_map(|entry| entry.ok())
            .find(|entry| entry.path().canonicalize().ok().as_ref() == Some(&device))
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .ok_or_else(|| {
                Error::io(format!("finding the PARTUUID of {label}"))(std::io::Error::other(
                    "no link in by-partuuid points at it",
                ))
            })?;
        Ok(Self { device, uuid })
    }

    /// Refuses a partition that is not on `disk`, the running root's.
    fn check_on(&self, sys: &Path, disk: &str) -> Result<()> {
        let name = self
            .device
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let found = disk_of(sys, &name)?;
        if found != disk {
            return Err(Error::invalid(
                "disk",
                format!(
                    "{} is on {found}, not on {disk}, the disk the appliance runs from: another disk holds partitions of the same names (a second appliance disk?). Detach it, then upload the release again",
                    self.device.display()
                ),
            ));
        }
        Ok(())
    }

    /// The partition, for writing `size` bytes from its start, once they are known to fit.
    fn open(&self, size: u64) -> Result<Durable> {
        let context = format!("opening {}", self.device.display());
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.device)
            .map_err(Error::io(context.clone()))?;
        let capacity = file
            .seek(SeekFrom::End(0))
            .map_err(Error::io(context.clone()))?;
        if size > capacity {
            return Err(Error::invalid(
                "bundle",
                format!(
                    "its {size} bytes do not fit {} ({capacity} bytes): this release needs a \
                     new image, not an upgrade",
                    self.device.display()
                ),
            ));
        }
        file.seek(SeekFrom::Start(0)).map_err(Error::io(context))?;
        Ok(Durable(file))
    }
}

/// A file whose `flush` reaches the disk.
struct Durable(File);

impl Durable {
    fn create(path: &Path) -> Result<Self> {
        File::create(path)
            .map(Durable)
            .map_err(Error::io(format!("creating {}", path.display())))
    }
}

impl Write for Durable {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.sync_all()
    }
}

/// Removes `slot`'s boot entries, durably, before its partitions are overwritten.
fn remove_entries(entries: &Path, slot: Slot) -> Result<()> {
    for file in entry_files(entries)? {
        if slot.owns_entry(&file) {
            let path = entries.join(&file);
            std::fs::remove_file(&path)
                .map_err(Error::io(format!("removing {}", path.display())))?;
            println!("removed the boot entry {file}");
        }
    }
    sync_dir(entries)
}

fn entry_files(entries: &Path) -> Result<Vec<String>> {
    let listing =
        std::fs::read_dir(entries).map_err(Error::io(format!("listing {}", entries.display())))?;
    Ok(listing
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("lemur-") && name.ends_with(".conf"))
        .collect())
}

/// The highest `version` among the appliance's boot entries (0 when none has one).
fn newest_generation(entries: &Path) -> Result<u64> {
    let mut newest = 0;
    for file in entry_files(entries)? {
        let path = entries.join(&file);
        let text = std::fs::read_to_string(&path)
            .map_err(Error::io(format!("reading {}", path.display())))?;
        let version = text
            .lines()
            .find_map(|line| line.strip_prefix("version "))
            .and_then(|version| version.trim().parse::<u64>().ok());
        newest = newest.max(version.unwrap_or(0));
    }
    Ok(newest)
}

/// A slot's boot entry.
struct Entry<'a> {
    slot: Slot,
    generation: u64,
    manifest: &'a Manifest,
    root: &'a Partition,
    verity: &'a Partition,
}

impl Entry<'_> {
    /// The entry file: what names the slot first on the command line, the release's options
    /// after (the serial console last, where it gets the login prompt).
    fn text(&self) -> String {
        let Entry {
            slot,
            generation,
            manifest,
            root,
            verity,
        } = self;
        format!(
            "title Lemur-HSM {version} (slot {slot})\nsort-key {SORT_KEY}\nversion {generation}\n\
             linux /{slot}/vmlinuz\ninitrd /{slot}/initrd\noptions roothash={hash} \
             systemd.verity_root_data=PARTUUID={root} systemd.verity_root_hash=PARTUUID={verity} \
             lemur.slot={slot} {options}\n",
            version = manifest.version,
            hash = manifest.roothash,
            root = root.uuid,
            verity = verity.uuid,
            options = manifest.options,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_slot_comes_from_the_command_line() {
        assert_eq!(Slot::running("ro lemur.slot=b quiet").unwrap(), Slot('b'));
        assert_eq!(Slot::running("lemur.slot=a").unwrap().other(), Slot('b'));
        assert!(Slot::running("ro quiet").is_err());
        assert!(Slot::running("lemur.slot=c").is_err());
    }

    #[test]
    fn a_slot_owns_its_entries_with_or_without_a_counter() {
        let a = Slot('a');
        for own in ["lemur-a.conf", "lemur-a+3.conf", "lemur-a+0-3.conf"] {
            assert!(a.owns_entry(own), "{own}");
        }
        for other in [
            "lemur-b.conf",
            "lemur-ab.conf",
            "lemur-a.conf.tmp",
            "other.conf",
        ] {
            assert!(!a.owns_entry(other), "{other}");
        }
    }
}
