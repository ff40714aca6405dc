//! The simulated sidecar's persistence store: the binary's own put protocol
//! ([`transport::store::replace_durably`]) run on a disk that crashes.
//!
//! The disk keeps, like a real one, two views: what reads see now, and what survives a crash.
//! A file's content survives only once synced; a directory entry (a new temp file, a rename)
//! only once the directory is synced. A crash throws away everything else, except that a file's
//! unsynced tail may survive in part (a torn write). Crashes come at random steps of a put (the
//! put then fails, as the sidecar would have died there) and, between calls, at random moments
//! (power lost after earlier puts returned).
//!
//! The property, checked right after every crash and on every read: each key holds exactly the
//! last value whose put succeeded, byte for byte. A crash in the middle of a flush never loses a
//! previously completed flush, and never leaves a torn value to load.

use kernel::host::store::{Store, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use transport::store::{replace_durably, DurableDir, STATE_SUFFIX};

/// Steps of one put: create the temp file, write, sync, rename, sync the directory.
const PUT_STEPS: u32 = 5;

#[derive(Debug, Default)]
struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What survives a crash.
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct Disk {
    /// Directory entries as reads see them: name → inode.
    names: BTreeMap<String, u64>,
    /// Directory entries that survive a crash.
    durable_names: BTreeMap<String, u64>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// Steps taken by the put in progress, and the step it crashes at, if it does.
    steps: u32,
    crash_at_step: Option<u32>,
    /// The oracle: each key's last value whose put succeeded.
    acknowledged: BTreeMap<String, Vec<u8>>,
    /// Property violations and reached states, drained into the simulation's report.
    violations: Vec<String>,
    reached: Vec<&'static str>,
}

impl Disk {
    /// Power lost: only durable entries and synced content remain, plus a torn piece of each
    /// file's unsynced tail.
    fn crash(&mut self, rng: &mut StdRng) {
        self.names = self.durable_names.clone();
        let live: std::collections::BTreeSet<u64> = self.names.values().copied().collect();
        self.inodes.retain(|inode, _| live.contains(inode));
        for inode in self.inodes.values_mut() {
            let synced = inode.synced.len();
            if inode.data.len() > synced && inode.data.starts_with(&inode.synced) {
                // Appended and not synced: some of it may have reached the platter.
                let torn = rng.random_range(synced..=inode.data.len());
                inode.data.truncate(torn);
            } else {
                inode.data.clone_from(&inode.synced);
            }
            inode.synced.clone_from(&inode.data);
        }
        self.check_acknowledged_survived();
    }

    /// The property, right after a crash: every key reads back its last completed flush.
    fn check_acknowledged_survived(&mut self) {
        let mut lost = Vec::new();
        for (key, value) in &self.acknowledged {
            let now = self.names.get(&state_name(key)).and_then(|inode| self.inodes.get(inode)).map(|file| &file.data);
            if now != Some(value) {
                lost.push(format!(
                    "after a crash, store key {key:?} holds {:?} bytes, not its last completed flush ({} bytes)",
                    now.map(Vec::len),
                    value.len()
                ));
            }
        }
        if lost.is_empty() && !self.acknowledged.is_empty() {
            self.reached.push("flush_survived_crash");
        }
        self.violations.extend(lost);
    }
}

/// The store on the crashing disk (see the module docs).
#[derive(Debug)]
pub struct CrashDisk {
    disk: Mutex<Disk>,
    rng: Mutex<StdRng>,
    /// Chance that a put fails before touching the disk (a full disk).
    fail_rate: f64,
    /// Chance that a put crashes at one of its steps, and that power is lost before a call.
    crash_rate: f64,
}

fn crashed() -> StoreError {
    StoreError::Io("simulated crash".to_owned())
}

impl CrashDisk {
    pub fn new(seed: u64, fail_rate: f64, crash_rate: f64) -> Self {
        Self {
            disk: Mutex::new(Disk::default()),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x0000_5707_e000)),
            fail_rate,
            crash_rate,
        }
    }

    fn disk(&self) -> Result<MutexGuard<'_, Disk>, StoreError> {
        self.disk.lock().map_err(|_| StoreError::Io("simulated disk lock poisoned".to_owned()))
    }

    fn roll(&self, rate: f64) -> bool {
        self.rng.lock().map(|mut rng| rng.random_bool(rate)).unwrap_or(false)
    }

    fn crash(&self, disk: &mut Disk) {
        if let Ok(mut rng) = self.rng.lock() {
            disk.crash(&mut rng);
        }
    }

    /// Property violations and reached states since the last call.
    pub fn drain_report(&self) -> (Vec<String>, Vec<&'static str>) {
        match self.disk.lock() {
            Ok(mut disk) => (std::mem::take(&mut disk.violations), std::mem::take(&mut disk.reached)),
            Err(_) => (vec!["simulated disk lock poisoned".to_owned()], Vec::new()),
        }
    }

    /// One step of the put in progress: `Err` if it crashes here.
    fn step(&self) -> Result<MutexGuard<'_, Disk>, StoreError> {
        let mut disk = self.disk()?;
        disk.steps += 1;
        if disk.crash_at_step == Some(disk.steps) {
            disk.crash_at_step = None;
            self.crash(&mut disk);
            disk.reached.push("crash_mid_flush");
            return Err(crashed());
        }
        Ok(disk)
    }

    /// Power lost before this call, now and then.
    fn maybe_lose_power(&self) -> Result<(), StoreError> {
        if self.roll(self.crash_rate / 2.0) {
            let mut disk = self.disk()?;
            self.crash(&mut disk);
        }
        Ok(())
    }
}

fn state_name(key: &str) -> String {
    format!("{key}{STATE_SUFFIX}")
}

impl DurableDir for CrashDisk {
    /// The temp file's name and inode.
    type Temp = (String, u64);

    fn create_temp(&self, key: &str) -> Result<Self::Temp, StoreError> {
        let mut disk = self.step()?;
        let inode = disk.next_inode;
        disk.next_inode += 1;
        let name = format!(".{key}.{inode}.tmp");
        disk.inodes.insert(inode, Inode::default());
        disk.names.insert(name.clone(), inode);
        Ok((name, inode))
    }

    fn write_all(&self, (_, inode): &mut Self::Temp, bytes: &[u8]) -> Result<(), StoreError> {
        let mut disk = self.step()?;
        let file = disk.inodes.get_mut(inode).ok_or_else(crashed)?;
        file.data.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&self, (_, inode): &mut Self::Temp) -> Result<(), StoreError> {
        let mut disk = self.step()?;
        let file = disk.inodes.get_mut(inode).ok_or_else(crashed)?;
        file.synced.clone_from(&file.data);
        Ok(())
    }

    fn rename_over(&self, (name, inode): &Self::Temp, key: &str) -> Result<(), StoreError> {
        let mut disk = self.step()?;
        disk.names.remove(name).ok_or_else(crashed)?;
        disk.names.insert(state_name(key), *inode);
        Ok(())
    }

    fn remove_temp(&self, (name, _): Self::Temp) {
        if let Ok(mut disk) = self.disk() {
            disk.names.remove(&name);
        }
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        let mut disk = self.step()?;
        disk.durable_names = disk.names.clone();
        Ok(())
    }
}

impl Store for CrashDisk {
    fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.maybe_lose_power()?;
        let mut disk = self.disk()?;
        let value =
            disk.names.get(&state_name(key)).and_then(|inode| disk.inodes.get(inode)).map(|file| file.data.clone());
        if value.as_ref() != disk.acknowledged.get(key) {
            let found = value.as_ref().map(Vec::len);
            let expected = disk.acknowledged.get(key).map(Vec::len);
            disk.violations.push(format!(
                "store key {key:?} read back {found:?} bytes, not its last completed flush ({expected:?} bytes)"
            ));
        }
        match value {
            Some(value) if u64::try_from(value.len()).unwrap_or(u64::MAX) > max_bytes => {
                Err(StoreError::TooLarge { size: u64::try_from(value.len()).unwrap_or(u64::MAX), limit: max_bytes })
            }
            value => Ok(value),
        }
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.maybe_lose_power()?;
        if self.roll(self.fail_rate) {
            return Err(StoreError::Io("injected store failure".to_owned()));
        }
        let crash_at_step = if self.roll(self.crash_rate) {
            self.rng.lock().ok().map(|mut rng| rng.random_range(1..=PUT_STEPS))
        } else {
            None
        };
        {
            let mut disk = self.disk()?;
            disk.steps = 0;
            disk.crash_at_step = crash_at_step;
        }
        replace_durably(self, key, value)?;
        self.disk()?.acknowledged.insert(key.to_owned(), value.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn crashes_at_every_step_keep_the_last_completed_value() {
        for seed in 0..200 {
            let disk = CrashDisk::new(seed, 0.0, 0.7);
            for round in 0u8..20 {
                let _ = disk.put("k", &[round; 64]);
                let _ = disk.get("k", 1 << 20);
            }
            let (violations, _) = disk.drain_report();
            assert!(violations.is_empty(), "seed {seed}: {violations:?}");
        }
    }

    /// A protocol that skips the sync before the rename: the disk catches the torn value.
    #[test]
    fn renaming_an_unsynced_file_is_caught() {
        struct Careless<'a>(&'a CrashDisk);
        impl DurableDir for Careless<'_> {
            type Temp = (String, u64);
            fn create_temp(&self, key: &str) -> Result<Self::Temp, StoreError> {
                self.0.create_temp(key)
            }
            fn write_all(&self, temp: &mut Self::Temp, bytes: &[u8]) -> Result<(), StoreError> {
                self.0.write_all(temp, bytes)
            }
            fn sync(&self, _temp: &mut Self::Temp) -> Result<(), StoreError> {
                Ok(())
            }
            fn rename_over(&self, temp: &Self::Temp, key: &str) -> Result<(), StoreError> {
                self.0.rename_over(temp, key)
            }
            fn remove_temp(&self, temp: Self::Temp) {
                self.0.remove_temp(temp);
            }
            fn sync_dir(&self) -> Result<(), StoreError> {
                self.0.sync_dir()
            }
        }
        let caught = (0..50).any(|seed| {
            let disk = CrashDisk::new(seed, 0.0, 0.0);
            for round in 0u8..10 {
                if replace_durably(&Careless(&disk), "k", &[round; 64]).is_ok() {
                    disk.disk().unwrap().acknowledged.insert("k".into(), vec![round; 64]);
                }
                let mut state = disk.disk().unwrap();
                let mut rng = StdRng::seed_from_u64(seed + u64::from(round));
                state.crash(&mut rng);
                drop(state);
                let _ = disk.get("k", 1 << 20);
            }
            !disk.drain_report().0.is_empty()
        });
        assert!(caught, "a crash after an unsynced rename must be seen");
    }
}
