//! Virtualization detection from DMI strings (`/sys/class/dmi/id`), `/sys/hypervisor`,
//! Hyper-V's VMBus, Xen's `/proc/xen`, the KVM paravirtual clock, and the cpuinfo
//! `hypervisor` flag, in that order of precision.
//!
//! DMI also hints at the cloud, which decides the metadata service asked first. A
//! Microsoft Hyper-V guest is only an Azure hint when its chassis asset tag is Azure's
//! fixed tag: on-premises Hyper-V has the same vendor and product strings, and calling
//! it Azure would be wrong.

use std::path::Path;

use serde::Serialize;

use crate::detect::cloud::CloudProvider;
use crate::read::{read_small, read_trim, under};

/// Azure sets this chassis asset tag on every VM; on-premises Hyper-V does not.
pub const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualizationInfo {
    pub is_virtualized: bool,
    /// `kvm`, `qemu`, `vmware`, `hyperv`, `xen`, `virtualbox`, `parallels`, `bhyve`,
    /// `bochs`, or `unknown` when only the CPU's hypervisor flag says so.
    pub virtualization_type: Option<String>,
    /// The cloud the DMI strings point to, if any.
    #[serde(skip)]
    pub cloud_hint: Option<CloudProvider>,
}

#[derive(Debug, Default)]
struct Dmi {
    sys_vendor: String,
    product_name: String,
    product_version: String,
    bios_vendor: String,
    bios_version: String,
    board_vendor: String,
    chassis_asset_tag: String,
    product_uuid: String,
}

fn dmi(root: &Path) -> Dmi {
    let d = under(root, "/sys/class/dmi/id");
    let r = |f: &str| read_trim(&d.join(f)).unwrap_or_default();
    Dmi {
        sys_vendor: r("sys_vendor"),
        product_name: r("product_name"),
        product_version: r("product_version"),
        bios_vendor: r("bios_vendor"),
        bios_version: r("bios_version"),
        board_vendor: r("board_vendor"),
        chassis_asset_tag: r("chassis_asset_tag"),
        // Readable by root only; absent otherwise.
        product_uuid: r("product_uuid"),
    }
}

pub fn detect(root: &Path) -> VirtualizationInfo {
    let d = dmi(root);
    let hv_type = read_trim(&under(root, "/sys/hypervisor/type")).map(|s| s.to_ascii_lowercase());
    let hv_uuid = read_trim(&under(root, "/sys/hypervisor/uuid")).unwrap_or_default();
    let cpu_flag = cpuinfo_has_hypervisor_flag(root);

    let vendorish = [
        d.sys_vendor.as_str(),
        d.product_name.as_str(),
        d.bios_vendor.as_str(),
        d.board_vendor.as_str(),
        d.product_version.as_str(),
    ]
    .join("\n")
    .to_ascii_lowercase();
    let has = |s: &str| vendorish.contains(s);

    let cloud_hint = if d.sys_vendor == "Amazon EC2"
        || d.bios_vendor.to_ascii_lowercase().contains("amazon")
        || d.bios_version.to_ascii_lowercase().contains("amazon")
        || hv_uuid.to_ascii_lowercase().starts_with("ec2")
        || d.product_uuid.to_ascii_lowercase().starts_with("ec2")
    {
        Some(CloudProvider::Aws)
    } else if d.product_name == "Google Compute Engine"
        || d.sys_vendor == "Google"
        || d.bios_vendor == "Google"
    {
        Some(CloudProvider::Gcp)
    } else if d.chassis_asset_tag == AZURE_ASSET_TAG {
        Some(CloudProvider::Azure)
    } else {
        None
    };

    let from_dmi = if has("amazon ec2") || has("google") || has("kvm") {
        // EC2 Nitro and GCE are KVM-based.
        Some("kvm")
    } else if has("qemu") {
        // QEMU's DMI strings are the same with and without KVM acceleration; the guest
        // picks the KVM paravirtual clock only under KVM.
        if kvm_clock(root) {
            Some("kvm")
        } else {
            Some("qemu")
        }
    } else if has("vmware") {
        Some("vmware")
    } else if has("innotek") || has("virtualbox") || has("oracle corporation\nvirtualbox") {
        Some("virtualbox")
    } else if d.sys_vendor == "Microsoft Corporation" && d.product_name == "Virtual Machine" {
        Some("hyperv")
    } else if has("xen") {
        Some("xen")
    } else if has("parallels") {
        Some("parallels")
    } else if has("bhyve") {
        Some("bhyve")
    } else if has("bochs") {
        Some("bochs")
    } else {
        None
    };

    let kind = from_dmi
        .or(match hv_type.as_deref() {
            Some("xen") => Some("xen"),
            Some(_) => Some("unknown"),
            None => None,
        })
        .or_else(|| {
            let vmbus = std::fs::read_dir(under(root, "/sys/bus/vmbus/devices"))
                .map(|mut rd| rd.next().is_some())
                .unwrap_or(false);
            vmbus.then_some("hyperv")
        })
        .or_else(|| under(root, "/proc/xen").is_dir().then_some("xen"))
        .or_else(|| kvm_clock(root).then_some("kvm"))
        .or_else(|| cpu_flag.then_some("unknown"));

    VirtualizationInfo {
        is_virtualized: kind.is_some(),
        virtualization_type: kind.map(str::to_string),
        cloud_hint,
    }
}

fn kvm_clock(root: &Path) -> bool {
    read_small(&under(
        root,
        "/sys/devices/system/clocksource/clocksource0/available_clocksource",
    ))
    .is_some_and(|s| s.split_whitespace().any(|c| c == "kvm-clock"))
}

fn cpuinfo_has_hypervisor_flag(root: &Path) -> bool {
    read_small(&under(root, "/proc/cpuinfo")).is_some_and(|s| {
        s.lines()
            .filter(|l| l.starts_with("flags"))
            .take(1)
            .any(|l| l.split_whitespace().any(|f| f == "hypervisor"))
    })
}
