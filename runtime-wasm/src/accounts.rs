//! The guest's account database, as the `host_user` lookups serve it: the same two accounts
//! and groups as the VM's `/etc/passwd` and `/etc/group` (root, and the guest user that owns
//! `/home/user`), rendered in their file formats without a trailing newline.

use kernel::dispatch::{GUEST_USER_GID, GUEST_USER_UID};

/// One passwd entry.
struct Passwd {
    name: &'static str,
    uid: u32,
    gid: u32,
    gecos: &'static str,
    home: &'static str,
    shell: &'static str,
}

/// One group entry.
struct Group {
    name: &'static str,
    gid: u32,
    members: &'static [&'static str],
}

/// The accounts, in the order enumeration (`getpwent`) gives them.
const PASSWD: [Passwd; 2] = [
    Passwd { name: "root", uid: 0, gid: 0, gecos: "root", home: "/root", shell: "/bin/sh" },
    Passwd {
        name: "user",
        uid: GUEST_USER_UID,
        gid: GUEST_USER_GID,
        gecos: "user",
        home: "/home/user",
        shell: "/bin/sh",
    },
];

/// The groups, in the order enumeration (`getgrent`) gives them. The guest user is listed as a
/// member of its primary group, so `getgrouplist` (which scans member lists) finds it.
const GROUPS: [Group; 2] =
    [Group { name: "root", gid: 0, members: &[] }, Group { name: "user", gid: GUEST_USER_GID, members: &["user"] }];

impl Passwd {
    /// `name:x:uid:gid:gecos:home:shell`.
    fn line(&self) -> Vec<u8> {
        let Passwd { name, uid, gid, gecos, home, shell } = self;
        format!("{name}:x:{uid}:{gid}:{gecos}:{home}:{shell}").into_bytes()
    }
}

impl Group {
    /// `name:x:gid:member,member` (the member list may be empty).
    fn line(&self) -> Vec<u8> {
        format!("{}:x:{}:{}", self.name, self.gid, self.members.join(",")).into_bytes()
    }
}

pub(crate) fn passwd_by_uid(uid: u32) -> Option<Vec<u8>> {
    PASSWD.iter().find(|entry| entry.uid == uid).map(Passwd::line)
}

pub(crate) fn passwd_by_name(name: &[u8]) -> Option<Vec<u8>> {
    PASSWD.iter().find(|entry| entry.name.as_bytes() == name).map(Passwd::line)
}

pub(crate) fn passwd_by_index(index: u32) -> Option<Vec<u8>> {
    PASSWD.get(usize::try_from(index).ok()?).map(Passwd::line)
}

pub(crate) fn group_by_gid(gid: u32) -> Option<Vec<u8>> {
    GROUPS.iter().find(|entry| entry.gid == gid).map(Group::line)
}

pub(crate) fn group_by_name(name: &[u8]) -> Option<Vec<u8>> {
    GROUPS.iter().find(|entry| entry.name.as_bytes() == name).map(Group::line)
}

pub(crate) fn group_by_index(index: u32) -> Option<Vec<u8>> {
    GROUPS.get(usize::try_from(index).ok()?).map(Group::line)
}

/// The groups of the account `uid`: its primary group first, then those listing it as a member.
pub(crate) fn groups_of(uid: u32) -> Vec<u32> {
    let Some(account) = PASSWD.iter().find(|entry| entry.uid == uid) else { return Vec::new() };
    let mut gids = vec![account.gid];
    let supplementary = GROUPS.iter().filter(|group| group.members.contains(&account.name)).map(|group| group.gid);
    for gid in supplementary {
        if !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    gids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_in_the_file_formats() {
        assert_eq!(passwd_by_uid(0).as_deref(), Some(&b"root:x:0:0:root:/root:/bin/sh"[..]));
        assert_eq!(passwd_by_name(b"user").as_deref(), Some(&b"user:x:1000:1000:user:/home/user:/bin/sh"[..]));
        assert_eq!(passwd_by_index(1), passwd_by_uid(1000));
        assert_eq!(passwd_by_index(2), None);
        assert_eq!(group_by_gid(0).as_deref(), Some(&b"root:x:0:"[..]));
        assert_eq!(group_by_name(b"user").as_deref(), Some(&b"user:x:1000:user"[..]));
        assert_eq!(group_by_index(2), None);
        assert_eq!(passwd_by_name(b"nobody"), None);
        assert_eq!(groups_of(1000), [1000]);
        assert_eq!(groups_of(0), [0]);
        assert_eq!(groups_of(7), Vec::<u32>::new());
    }
}
