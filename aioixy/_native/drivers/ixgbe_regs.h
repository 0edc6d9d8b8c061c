/* Intel 82599 10 GbE controller: the registers, bits and descriptor layouts that the aioixy
 * ixgbe driver and the sim-82599 model use, and nothing else.
 *
 * Source: Intel 82599 10 GbE Controller Datasheet (rev. 3.x); the section numbers below are
 * its chapter 8 "Programming Interface" register descriptions and chapter 7 "Inline
 * Functions" for descriptor formats. Offsets were cross-checked against the register
 * definitions of a public driver (read, not copied). docs/ixgbe-registers.md lists each with
 * its meaning; keep both in step.
 */
#ifndef AIOIXY_IXGBE_REGS_H
#define AIOIXY_IXGBE_REGS_H

#include <stdint.h>

#define IXGBE_BAR0_SIZE 0x20000u /* 128 KiB memory BAR: CSR space */

/* 8.2.3.1 General control */
#define IXGBE_CTRL 0x00000
#define IXGBE_CTRL_GIO_DIS (1u << 2) /* PCIe master disable: no new DMA requests */
#define IXGBE_CTRL_LRST (1u << 3)   /* link reset: the whole MAC and the link (Linux LNK_RST) */
#define IXGBE_CTRL_RST (1u << 26)   /* device (software) reset, self-clearing; keeps the link */
#define IXGBE_CTRL_RST_MASK (IXGBE_CTRL_LRST | IXGBE_CTRL_RST)
#define IXGBE_STATUS 0x00008
#define IXGBE_STATUS_GIO (1u << 19) /* PCIe master enable status: DMA requests may be pending */
#define IXGBE_CTRL_EXT 0x00018
#define IXGBE_CTRL_EXT_NS_DIS (1u << 16) /* no-snoop disable */

/* 8.2.3.5 Interrupts */
#define IXGBE_EICR 0x00800
#define IXGBE_EICS 0x00808          /* cause set: software raises causes */
#define IXGBE_EIAC 0x00810          /* auto-clear of EICR bits when their MSI-X message is sent */
#define IXGBE_EITR(v) (0x00820u + 4u * (v)) /* throttling of vectors 0..23 */
#define IXGBE_EITR_ITR_MASK 0x00000ff8u /* ITR interval, bits 11:3, in 2 us units */
#define IXGBE_EITR_CNT_WDIS (1u << 31) /* write the interval without resetting the counter */
#define IXGBE_EIMS 0x00880          /* mask set (enable), write 1 to set */
#define IXGBE_EIMC 0x00888          /* mask clear (disable), write 1 to clear */
#define IXGBE_EIAM 0x00890          /* auto-mask: EIMS bit cleared when its message is sent */
#define IXGBE_GPIE 0x00898
#define IXGBE_GPIE_MSIX_MODE (1u << 4)
#define IXGBE_GPIE_EIAME (1u << 30)  /* auto-mask (EIAM) applies to MSI-X messages too */
#define IXGBE_GPIE_PBA_SUPPORT (1u << 31)
#define IXGBE_IVAR(i) (0x00900u + 4u * (i)) /* queues 2i, 2i+1: rx byte, tx byte each */
#define IXGBE_IVAR_ALLOC_VAL 0x80u   /* the entry's vector (bits 5:0) is valid */
#define IXGBE_EIMC_ALL 0x7fffffffu
#define IXGBE_GIO_DISABLE_MS 80u     /* how long STATUS.GIO may take to clear (800 x 100 us) */

/* 8.2.3.2 EEPROM/Flash control */
#define IXGBE_EEC 0x10010
#define IXGBE_EEC_ARD (1u << 9)     /* EEPROM auto-read done */

/* 8.2.3.8 Receive DMA */
#define IXGBE_RDBAL(q) (0x01000u + 0x40u * (q))
#define IXGBE_RDBAH(q) (0x01004u + 0x40u * (q))
#define IXGBE_RDLEN(q) (0x01008u + 0x40u * (q))
#define IXGBE_RDH(q) (0x01010u + 0x40u * (q))
#define IXGBE_SRRCTL(q) (0x01014u + 0x40u * (q))
#define IXGBE_RDT(q) (0x01018u + 0x40u * (q))
#define IXGBE_RXDCTL(q) (0x01028u + 0x40u * (q))
#define IXGBE_DCA_RXCTRL(q) (0x0100Cu + 0x40u * (q))
#define IXGBE_QPRC(q) (0x01030u + 0x40u * (q)) /* 8.2.3.23: queue packets received */
#define IXGBE_QBRC_L(q) (0x01034u + 0x40u * (q)) /* queue bytes received, low / high */
#define IXGBE_QBRC_H(q) (0x01038u + 0x40u * (q))
#define IXGBE_QPRDC(q) (0x01430u + 0x40u * (q)) /* queue packets dropped: no descriptor */
#define IXGBE_RQSMR(i) (0x02300u + 4u * (i))   /* rx queue -> statistics counter map */
#define IXGBE_DCA_RXCTRL_DESC_RRO_EN (1u << 9)
#define IXGBE_DCA_RXCTRL_RSVD12 (1u << 12)     /* reserved, resets to 1, must be written 0 */
#define IXGBE_DCA_RXCTRL_DATA_WRO_EN (1u << 13) /* relaxed ordering of data writes */
#define IXGBE_DCA_RXCTRL_HEAD_WRO_EN (1u << 15) /* relaxed ordering of header writes */
/* BSIZEPACKET is bits 4:0, 1..16 KiB (bits 7:5 are reserved; Linux's mask 0x7F spans them) */
#define IXGBE_SRRCTL_BSIZEPKT_MASK 0x1fu
#define IXGBE_SRRCTL_BSIZEPKT_MAX 16u
#define IXGBE_SRRCTL_DESCTYPE_MASK (7u << 25)
#define IXGBE_SRRCTL_DESCTYPE_ADV_ONEBUF (1u << 25)
#define IXGBE_SRRCTL_DROP_EN (1u << 28)
#define IXGBE_RXDCTL_ENABLE (1u << 25)
#define IXGBE_RXDCTL_SWFLSH (1u << 26)        /* flush descriptor write-backs still held */
#define IXGBE_RDRXCTL 0x02F00
#define IXGBE_RDRXCTL_CRCSTRIP (1u << 1)
#define IXGBE_RDRXCTL_DMAIDONE (1u << 3)      /* DMA init done */
#define IXGBE_RDRXCTL_RSCFRSTSIZE (0x1fu << 17) /* RSC first packet size: must be 0 */
#define IXGBE_RDRXCTL_RSCACKC (1u << 25)      /* 82599: must be set */
#define IXGBE_RDRXCTL_FCOE_WRFIX (1u << 26)   /* 82599: must be set */
#define IXGBE_RXCTRL 0x03000
#define IXGBE_RXCTRL_RXEN (1u << 0)
#define IXGBE_SECRXCTRL 0x08D00
#define IXGBE_SECRXCTRL_RX_DIS (1u << 1)      /* stop the rx security block (errata sequence) */
#define IXGBE_SECRXSTAT 0x08D04
#define IXGBE_SECRXSTAT_SECRX_RDY (1u << 0)   /* rx security block idle */
#define IXGBE_RXPBSIZE(i) (0x03C00u + 4u * (i))
#define IXGBE_RXPBSIZE_512KB 0x00080000u      /* size field is bits 19:10, KB units: all of it */
#define IXGBE_MPC(i) (0x03FA0u + 4u * (i))    /* 8.2.3.23: missed packets, per packet buffer */

/* 8.2.3.7 Receive filtering */
#define IXGBE_RXCSUM 0x05000
#define IXGBE_RXCSUM_PCSD (1u << 13)          /* write the RSS hash instead of the checksum */
#define IXGBE_FCTRL 0x05080
#define IXGBE_FCTRL_MPE (1u << 8)             /* multicast promiscuous */
#define IXGBE_FCTRL_UPE (1u << 9)             /* unicast promiscuous */
#define IXGBE_FCTRL_BAM (1u << 10)            /* broadcast accept */
#define IXGBE_RETA(i) (0x05C00u + 4u * (i))   /* 32 registers, 4 one-byte entries each */
#define IXGBE_RSSRK(i) (0x05C80u + 4u * (i))  /* 10 registers: the 40-byte Toeplitz key */
#define IXGBE_MRQC 0x05818
#define IXGBE_MRQC_MRQE_MASK 0xfu
#define IXGBE_MRQC_RSSEN 0x1u                 /* MRQE = 0001b: RSS only */
#define IXGBE_MRQC_TCPIPV4 (1u << 16)
#define IXGBE_MRQC_IPV4 (1u << 17)
#define IXGBE_MRQC_IPV6 (1u << 20)
#define IXGBE_MRQC_TCPIPV6 (1u << 21)
#define IXGBE_MRQC_UDPIPV4 (1u << 22)
#define IXGBE_MRQC_UDPIPV6 (1u << 23)
#define IXGBE_RAL(i) (0x0A200u + 8u * (i))
#define IXGBE_RAH(i) (0x0A204u + 8u * (i))
#define IXGBE_RAH_AV (1u << 31)               /* address valid */

/* 8.2.3.22 MAC */
#define IXGBE_HLREG0 0x04240
#define IXGBE_HLREG0_TXCRCEN (1u << 0)
#define IXGBE_HLREG0_RXCRCSTRP (1u << 1)
#define IXGBE_HLREG0_JUMBOEN (1u << 2)        /* frames up to MAXFRS.MFS, else up to 1518 bytes */
#define IXGBE_HLREG0_TXPADEN (1u << 10)
#define IXGBE_MAXFRS 0x04268
#define IXGBE_MAXFRS_MFS_SHIFT 16             /* bits 31:16: largest frame in bytes, CRC included */
#define IXGBE_MAXFRS_MFS_MASK 0xffff0000u
#define IXGBE_FRAME_MAX_STD 1518u             /* the limit while HLREG0.JUMBOEN is clear */
#define IXGBE_AUTOC 0x042A0
#define IXGBE_AUTOC_10G_PMA_PMD_MASK (3u << 7)
#define IXGBE_AUTOC_10G_XAUI (0u << 7)        /* parallel: XAUI; serial: see AUTOC2 */
#define IXGBE_AUTOC_10G_KX4 (1u << 7)
#define IXGBE_AUTOC_10G_CX4 (2u << 7)
#define IXGBE_AUTOC_AN_RESTART (1u << 12)     /* self-clearing */
#define IXGBE_AUTOC_LMS_SHIFT 13
#define IXGBE_AUTOC_LMS_MASK (7u << 13)
#define IXGBE_AUTOC_LMS_10G_PARALLEL (1u << 13) /* 10G, no AN: XAUI / KX4 / CX4 */
#define IXGBE_AUTOC_LMS_10G_SERIAL (3u << 13)   /* 10G serial, no AN: SFI / KR */
#define IXGBE_AUTOC_LMS_KX4_KX_KR (4u << 13)    /* backplane auto-negotiation */
#define IXGBE_AUTOC2 0x042A8
#define IXGBE_AUTOC2_10G_PMA_PMD_SERIAL_MASK (3u << 16)
#define IXGBE_AUTOC2_10G_KR (0u << 16)
#define IXGBE_AUTOC2_10G_SFI (2u << 16)
#define IXGBE_AUTOC2_LINK_DISABLE_MASK 0x70000000u /* bits 30:28: link held down */
#define IXGBE_ANLP1 0x042B0
#define IXGBE_ANLP1_AN_STATE_MASK (0xfu << 16) /* link setup state machine, 0 = idle */
#define IXGBE_LINKS 0x042A4
#define IXGBE_LINKS_UP (1u << 30)
#define IXGBE_LINKS_SPEED_MASK (3u << 28)
#define IXGBE_LINKS_SPEED_10G (3u << 28)
#define IXGBE_LINKS_SPEED_1G (2u << 28)
#define IXGBE_LINKS_SPEED_100M (1u << 28)

/* 8.2.3.23 Statistics (all clear on read) */
#define IXGBE_CRCERRS 0x04000                 /* frames with a bad CRC */
#define IXGBE_ROC 0x040AC                     /* frames over the size limit, dropped */
#define IXGBE_GPRC 0x04074
#define IXGBE_GPTC 0x04080
#define IXGBE_GORCL 0x04088
#define IXGBE_GORCH 0x0408C
#define IXGBE_GOTCL 0x04090
#define IXGBE_GOTCH 0x04094
#define IXGBE_STAT_QUEUES 16                  /* QPRC / QBRC / QPRDC statistics counters */

/* 8.2.3.9 Transmit DMA */
#define IXGBE_RTTDCS 0x04900
#define IXGBE_RTTDCS_ARBDIS (1u << 6)        /* tx descriptor arbiter disable */
#define IXGBE_TXPBTHRESH(i) (0x04950u + 4u * (i)) /* KB: buffer size minus the largest frame */
#define IXGBE_DMATXCTL 0x04A80
#define IXGBE_DMATXCTL_TE (1u << 0)           /* transmit enable */
#define IXGBE_TDBAL(q) (0x06000u + 0x40u * (q))
#define IXGBE_TDBAH(q) (0x06004u + 0x40u * (q))
#define IXGBE_TDLEN(q) (0x06008u + 0x40u * (q))
#define IXGBE_TDH(q) (0x06010u + 0x40u * (q))
#define IXGBE_TDT(q) (0x06018u + 0x40u * (q))
#define IXGBE_DCA_TXCTRL(q) (0x0600Cu + 0x40u * (q))
#define IXGBE_DCA_TXCTRL_DESC_WRO_EN (1u << 11) /* relaxed ordering of descriptor write-back */
#define IXGBE_TXDCTL(q) (0x06028u + 0x40u * (q))
#define IXGBE_QPTC(q) (0x06030u + 0x40u * (q)) /* queue packets transmitted */
#define IXGBE_TXDCTL_ENABLE (1u << 25)
#define IXGBE_TXDCTL_SWFLSH (1u << 26)        /* flush descriptor write-backs still held */
#define IXGBE_TXDCTL_PTHRESH(x) ((uint32_t)(x) & 0x7fu)
#define IXGBE_TXDCTL_HTHRESH(x) (((uint32_t)(x) & 0x7fu) << 8)
#define IXGBE_TXDCTL_WTHRESH(x) (((uint32_t)(x) & 0x7fu) << 16)
#define IXGBE_DTXMXSZRQ 0x08100
#define IXGBE_TXPBSIZE(i) (0x0CC00u + 4u * (i))
#define IXGBE_TXPBSIZE_160KB 0x00028000u      /* all of the tx packet buffer */
#define IXGBE_TX_MAX_FRAME_KB 10u             /* TXPBTHRESH margin: largest frame, KB */

/* 7.1.6 Advanced receive descriptor: read format (driver writes) and write-back format
 * (device writes). Both 16 bytes, same memory. */
union ixgbe_adv_rx_desc {
    struct {
        uint64_t pkt_addr;
        uint64_t hdr_addr; /* bit 0 overlaps DD: writing 0 here hands the slot to the device */
    } read;
    struct {
        uint32_t pkt_info;     /* bits 3:0 RSS type, bits 16:4 packet type */
        uint32_t rss_hash;     /* with RXCSUM.PCSD */
        uint32_t status_error; /* bit 0 DD, bit 1 EOP; bits 31:20 errors */
        uint16_t length;
        uint16_t vlan;
    } wb;
};
#define IXGBE_RXD_STAT_DD (1u << 0)
#define IXGBE_RXD_STAT_EOP (1u << 1)
#define IXGBE_RXD_STAT_L4CS (1u << 5)         /* L4 (TCP/UDP) checksum checked */
#define IXGBE_RXD_STAT_IPCS (1u << 6)         /* IPv4 header checksum checked */
/* extended errors, bits 31:20 of the 82599 layout (bits 24-29 are CE/LE/PE/OSE/USE only on
 * the 82598) */
#define IXGBE_RXD_ERR_SECERR_MASK (3u << 27)  /* IPsec/MACsec error: only with security offload */
#define IXGBE_RXD_ERR_RXE (1u << 29)          /* any MAC error (CRC, length, symbol...) */
#define IXGBE_RXD_ERR_L4E (1u << 30)          /* L4 checksum error (also UDP checksum 0: erratum) */
#define IXGBE_RXD_ERR_IPE (1u << 31)          /* IPv4 header checksum error */
/* the errors that make a frame unusable; IPE/L4E are only checksum status, and SECERR is never
 * set: the driver enables no security offload */
#define IXGBE_RXD_ERR_FRAME IXGBE_RXD_ERR_RXE
/* packet type (pkt_info bits 16:4, 7.1.6.2) */
#define IXGBE_PKTTYPE_IPV4 (1u << 4)
#define IXGBE_PKTTYPE_IPV6 (1u << 6)
#define IXGBE_PKTTYPE_TCP (1u << 8)
#define IXGBE_PKTTYPE_UDP (1u << 9)
/* RSS types (pkt_info bits 3:0), 7.1.2.8.1 */
#define IXGBE_RSSTYPE_NONE 0x0u
#define IXGBE_RSSTYPE_TCPV4 0x1u
#define IXGBE_RSSTYPE_IPV4 0x2u
#define IXGBE_RSSTYPE_TCPV6 0x3u
#define IXGBE_RSSTYPE_IPV6 0x5u
#define IXGBE_RSSTYPE_UDPV4 0x7u
#define IXGBE_RSSTYPE_UDPV6 0x8u

/* 7.2.3.2.4 Advanced transmit data descriptor */
union ixgbe_adv_tx_desc {
    struct {
        uint64_t buffer_addr;
        uint32_t cmd_type_len; /* bits 15:0 length, 23:20 DTYP, 31:24 DCMD */
        uint32_t olinfo_status; /* bits 31:14 PAYLEN */
    } read;
    struct {
        uint64_t rsvd;
        uint32_t nxtseq_seed;
        uint32_t status; /* bit 0 DD */
    } wb;
};
#define IXGBE_TXD_LEN_MASK 0xffffu
#define IXGBE_TXD_DTYP_MASK (0xfu << 20)
#define IXGBE_TXD_DTYP_DATA (0x3u << 20)
#define IXGBE_TXD_CMD_EOP (1u << 24)
#define IXGBE_TXD_CMD_IFCS (1u << 25)
#define IXGBE_TXD_CMD_RS (1u << 27)
#define IXGBE_TXD_CMD_DEXT (1u << 29)
#define IXGBE_TXD_PAYLEN_SHIFT 14
#define IXGBE_TXD_STAT_DD (1u << 0)
#define IXGBE_TX_MIN_LEN 17u                   /* shorter frames are not supported by the DMA */
/* rx buffers are filled in 1 KiB units (SRRCTL.BSIZEPKT): 2 KiB of room for a full frame, and
 * with the 64-byte pkt_buf header that is a 4 KiB buffer */
#define IXGBE_MIN_BUF_SIZE 4096u
#define IXGBE_TX_MAX_LEN 15872u                /* 15.5 KiB: the largest frame without TSO */
#define IXGBE_RX_MAX_FRAME 15872u              /* MAXFRS: the largest frame the MAC accepts */

_Static_assert(sizeof(union ixgbe_adv_rx_desc) == 16, "rx descriptor is 16 bytes");
_Static_assert(sizeof(union ixgbe_adv_tx_desc) == 16, "tx descriptor is 16 bytes");

#endif
